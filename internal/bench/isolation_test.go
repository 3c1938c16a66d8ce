package bench

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/cardwarden/cardwarden/workflows"
)

func idleWorkflow(ctx workflow.Context) error {
	return workflow.Await(ctx, func() bool { return false })
}

// With --address, the bench refuses a namespace where other workers poll cardwarden's task
// queues (a production worker would run its activities), prepares one of its own, and ends
// only the workflows it started.
func TestBenchRunsApartFromOtherWorkers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	prod := ts.GetDefaultClient()

	// "Production": a worker on cardwarden's workflow task queue in the default namespace.
	w := sdkworker.New(prod, workflows.TaskQueue, sdkworker.Options{})
	w.RegisterWorkflow(idleWorkflow)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = prepareNamespace(ctx, prod, ts.GetDefaultNamespace(), benchIdentity(), quiet); err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "other workers poll") || !strings.Contains(err.Error(), workflows.TaskQueue) {
		t.Fatalf("a namespace with a production worker: %v, want a refusal naming the task queue", err)
	}

	// The bench's own namespace: created, ready, nobody polling.
	c := ts.NewClientWithOptions(client.Options{Namespace: DefaultNamespace})
	defer c.Close()
	if err := prepareNamespace(ctx, c, DefaultNamespace, benchIdentity(), quiet); err != nil {
		t.Fatalf("the bench's own namespace: %v", err)
	}

	// The workers of the bench's previous scenario (its own identity) do not make the next
	// scenario refuse; the same workers under another identity would.
	own := ts.NewClientWithOptions(client.Options{Namespace: DefaultNamespace, Identity: benchIdentity()})
	defer own.Close()
	ow := sdkworker.New(own, workflows.TaskQueue, sdkworker.Options{})
	ow.RegisterWorkflow(idleWorkflow)
	if err := ow.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = prepareNamespace(ctx, c, DefaultNamespace, "someone-else", quiet); err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), benchIdentity()) {
		t.Fatalf("a worker under the bench's identity, checked as someone else: %v, want a refusal naming it", err)
	}
	ow.Stop()
	if err := prepareNamespace(ctx, c, DefaultNamespace, benchIdentity(), quiet); err != nil {
		t.Fatalf("the bench's own earlier workers: %v, want them passed over", err)
	}

	// Cleanup ends the run's agents and floors, and nothing else.
	began := time.Now().Add(-time.Second)
	for _, id := range []string{workflows.WorkflowID("b0abc1-reset-00000"), workflows.WorkflowID("b0abc1-reset-00001"), "bench-floor-reset-b0abc1-reset-00000",
		workflows.WorkflowID("someone-else")} {
		if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "nobody-polls"}, "idleWorkflow"); err != nil {
			t.Fatal(err)
		}
	}
	ended := 0
	for deadline := time.Now().Add(time.Minute); ended < 3 && time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		n, err := terminateStarted(ctx, c, DefaultNamespace, "b0abc1-reset", began)
		if err != nil {
			t.Fatal(err)
		}
		ended += n
	}
	if ended != 3 {
		t.Fatalf("ended %d of the run's 3 workflows", ended)
	}
	d, err := c.DescribeWorkflowExecution(ctx, workflows.WorkflowID("someone-else"), "")
	if err != nil {
		t.Fatal(err)
	}
	if st := d.GetWorkflowExecutionInfo().GetStatus().String(); st != "Running" {
		t.Fatalf("another workflow in the namespace is %s, want it left running", st)
	}
}
