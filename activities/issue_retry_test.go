package activities_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/sim"
	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/internal/vault"
)

// Issue 14, item 12: a retried IssueCard (its answer lost, or its worker killed after the
// card was recorded) wrote a second card-issued audit row for the same generation.
func TestRetriedIssueAuditsOnce(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		first := w.issue(t, 1)
		again := w.issue(t, 1)
		if again.ID != first.ID {
			t.Fatalf("retry gave another card")
		}
		entries, err := st.ListAudit(context.Background(), "demo", 100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range entries {
			if e.Action == "card-issued" {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d card-issued audit entries for one card, want 1: %+v", n, entries)
		}
	})
}

// Issue 14, item 12: IssueCard did not heartbeat, so a worker killed during it delayed the
// retry by the whole 60 s start-to-close timeout. It heartbeats now while the issuer answers
// (here slowly), so a heartbeat timeout notices a dead worker within seconds.
func TestIssueCardHeartbeats(t *testing.T) {
	srv, err := issuersim.NewServer(issuersim.Config{Latency: 700 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	adapter, err := sim.New(sim.Config{BaseURL: hs.URL, APIKey: issuersim.DefaultAPIKey})
	if err != nil {
		t.Fatal(err)
	}
	st := testdb.Open(t, testdb.SQLiteURL(t))
	if err := st.UpsertAgent(context.Background(), store.Agent{AgentID: "demo", Issuer: "sim", Status: "active",
		Policy: `{"agent_id":"demo","daily_limit_usd":"25.00"}`}); err != nil {
		t.Fatal(err)
	}
	v, _ := vault.New(bytes.Repeat([]byte{7}, vault.KeySize))
	acts := &activities.Activities{Issuers: issuer.NewRegistry(adapter), Store: st, Vault: v, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}

	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(acts)
	var beats atomic.Int32
	env.SetOnActivityHeartbeatListener(func(info *activity.Info, _ converter.EncodedValues) {
		if info.ActivityType.Name == "IssueCard" {
			beats.Add(1)
		}
	})
	env.ExecuteWorkflow(func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, HeartbeatTimeout: 600 * time.Millisecond})
		return workflow.ExecuteActivity(ctx, "IssueCard", issueInput(1)).Get(ctx, nil)
	})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if beats.Load() == 0 {
		t.Fatal("IssueCard never heartbeat while the issuer took its time")
	}
}
