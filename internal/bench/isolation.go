package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/internal/temporalsetup"
	"github.com/cardwarden/cardwarden/workflows"
)

// A bench run against an existing Temporal cluster (--address) must not touch anything else
// there: it runs in a namespace of its own (DefaultNamespace, created if missing), refuses to
// start where other workers poll cardwarden's task queues (they would run its activities
// against their issuer and database, and its workers theirs), waits until the search
// attributes answer queries, and terminates what it started when it ends.

// DefaultNamespace is the namespace a bench run with --address uses unless told otherwise.
const DefaultNamespace = "cardwarden-bench"

// benchQueues are the task queues whose pollers would mix a bench with other work.
var benchQueues = []struct {
	name string
	typ  enumspb.TaskQueueType
}{
	{workflows.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW},
	{workflows.TaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY},
	{workflows.IssuerTaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY},
	{workflows.IssuerUrgentTaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY},
}

// benchIdentity names this bench process's clients and workers, so that a scenario's check
// for other workers passes over the pollers of the scenario before it (they are listed for a
// minute after they stop).
func benchIdentity() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("cardwarden-bench %d@%s", os.Getpid(), host)
}

// prepareNamespace readies namespace for a bench run on an existing cluster, or refuses when
// workers other than self (this bench's own identity) poll cardwarden's task queues there.
func prepareNamespace(ctx context.Context, c client.Client, namespace, self string, log *slog.Logger) error {
	if _, err := temporalsetup.Ensure(ctx, c, namespace, temporalsetup.Options{Logger: log}); err != nil {
		return fmt.Errorf("prepare namespace %s: %w", namespace, err)
	}
	var busy []string
	for _, q := range benchQueues {
		resp, err := c.DescribeTaskQueue(ctx, q.name, q.typ)
		if err != nil {
			return fmt.Errorf("describe task queue %s: %w", q.name, err)
		}
		for _, p := range resp.GetPollers() {
			// Pollers are listed for a few minutes after they stop; only recent ones count.
			if at := p.GetLastAccessTime(); at != nil && time.Since(at.AsTime()) < time.Minute && p.GetIdentity() != self {
				busy = append(busy, fmt.Sprintf("%s (%s)", q.name, p.GetIdentity()))
				break
			}
		}
	}
	if len(busy) > 0 {
		return fmt.Errorf("other workers poll cardwarden's task queues in namespace %s: %s; a bench there would run its "+
			"activities against their issuer and database and theirs on its own: use a namespace of its own (--namespace, default %s)",
			namespace, strings.Join(busy, ", "), DefaultNamespace)
	}
	return nil
}

// terminateStarted ends the workflows this run started and left open: its agents (ids under
// its prefix) and the floors' workflows.
func terminateStarted(ctx context.Context, c client.Client, namespace, prefix string, since time.Time) (int, error) {
	q := fmt.Sprintf(`ExecutionStatus = "Running" AND (WorkflowId STARTS_WITH %q OR (WorkflowId STARTS_WITH "bench-floor" AND StartTime >= %q))`,
		workflows.WorkflowID(prefix), since.UTC().Format(time.RFC3339Nano))
	n := 0
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: namespace, Query: q, NextPageToken: token, PageSize: 1000})
		if err != nil {
			return n, fmt.Errorf("list the run's workflows: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			if err := c.TerminateWorkflow(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), "cardwarden bench ended"); err == nil {
				n++
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return n, nil
		}
	}
}
