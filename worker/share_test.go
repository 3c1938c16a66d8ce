package worker_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/server/temporaltest"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/worker"
)

// Two worker processes polling the issuer queue of one real Temporal server each take half of
// the pace for the resets' local tries: the paced queue is capped across processes by the
// server, the local tries only by these shares.
func TestWorkerProcessesShareThePace(t *testing.T) {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	cfg := worker.Config{IssuerRatePerSecond: 100}
	pace := 100 * worker.IssuerPacing
	var ws []*worker.Workers
	for _, id := range []string{"process-a", "process-b"} {
		c := ts.NewClientWithOptions(client.Options{Identity: id})
		w := worker.New(c, &activities.Activities{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, cfg)
		if got := w.PacerRate(); got != pace {
			t.Fatalf("%s paces at %v before counting, want the whole %v", id, got, pace)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Stop)
		ws = append(ws, w)
	}
	deadline := time.Now().Add(time.Minute)
	for _, w := range ws {
		for w.PacerRate() != pace/2 {
			if time.Now().After(deadline) {
				t.Fatalf("share %v after a minute, want %v (two processes)", w.PacerRate(), pace/2)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
