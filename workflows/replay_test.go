package workflows_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/workflows"
)

// TestReplayRecordedHistories replays histories recorded on a real Temporal server (by
// `go test ./test/e2e/ -run . -update`) against the current code. A failure means a code
// change would break running workflows: guard it with workflow.GetVersion, or re-record
// the histories if the change is deliberately incompatible and no workflow runs the old code.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no histories in testdata; record them with: go test ./test/e2e/ -run . -update")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			hist, err := client.HistoryFromJSON(fh, client.HistoryJSONOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// The workflow checks that its id is agent/<agent_id>, so replay under the
			// original id (the history does not carry it; the policy in the input does).
			started := hist.Events[0].GetWorkflowExecutionStartedEventAttributes()
			var p struct {
				AgentID string `json:"agent_id"`
			}
			if err := json.Unmarshal(started.GetInput().GetPayloads()[0].GetData(), &p); err != nil {
				t.Fatal(err)
			}
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.AgentCard, workflow.RegisterOptions{Name: workflows.WorkflowType})
			err = r.ReplayWorkflowHistoryWithOptions(quietLogger, hist, worker.ReplayWorkflowHistoryOptions{
				OriginalExecution: workflow.Execution{ID: workflows.WorkflowID(p.AgentID), RunID: started.GetOriginalExecutionRunId()},
			})
			if err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
