package alerts

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cardwarden/cardwarden/internal/store"
)

// Store is the part of *store.Store that makes alerts once-only.
type Store interface {
	ClaimAlert(ctx context.Context, a store.Alert) (store.Alert, error)
	MarkAlertAttempt(ctx context.Context, agentID, kind, period string, sent bool) error
}

var _ Store = (*store.Store)(nil)

// Dispatcher sends each (agent, kind, period) alert once: the store row claimed first is the
// alert's record; a delivery that fails leaves it pending, counts the attempt, and returns an
// error the caller retries on (the SendAlert activity's retry policy); once every sink has it
// the row is marked sent, and any later Dispatch of the same alert — a replayed workflow, a
// second replica — is a no-op reported as Duplicate.
type Dispatcher struct {
	Store    Store
	Notifier *Notifier
	Logger   *slog.Logger
}

// Result says what Dispatch did.
type Result struct {
	// Duplicate: the alert had already been sent; nothing was sent now.
	Duplicate bool
	// Delivered lists the sinks that have the alert so far (pass it back on retry).
	Delivered []string
}

// Dispatch claims, sends and records a. already names the sinks an earlier attempt delivered
// to (an activity keeps them in its heartbeat details), so a retry skips them.
func (d *Dispatcher) Dispatch(ctx context.Context, a Alert, already []string) (Result, error) {
	row, err := d.Store.ClaimAlert(ctx, store.Alert{AgentID: a.AgentID, Kind: a.Kind, Period: a.Period, Message: a.Message})
	if err != nil {
		return Result{Delivered: already}, fmt.Errorf("dispatch alert %s: %w", a.Key(), err)
	}
	if row.Status == store.AlertSent {
		return Result{Duplicate: true, Delivered: already}, nil
	}
	delivered, sendErr := d.Notifier.Send(ctx, a, already)
	if sendErr != nil {
		if err := d.Store.MarkAlertAttempt(ctx, a.AgentID, a.Kind, a.Period, false); err != nil {
			d.log().ErrorContext(ctx, "alert attempt not recorded", "agent_id", a.AgentID, "kind", a.Kind, "error", err)
		}
		return Result{Delivered: delivered}, fmt.Errorf("dispatch alert %s: %w", a.Key(), sendErr)
	}
	if err := d.Store.MarkAlertAttempt(ctx, a.AgentID, a.Kind, a.Period, true); err != nil {
		// Delivered but not recorded: the caller retries, and the sinks that have it are in
		// Delivered, so they are skipped.
		return Result{Delivered: delivered}, fmt.Errorf("dispatch alert %s: %w", a.Key(), err)
	}
	d.log().InfoContext(ctx, "alert sent", "agent_id", a.AgentID, "kind", a.Kind, "period", a.Period,
		"sinks", len(delivered))
	return Result{Delivered: delivered}, nil
}

func (d *Dispatcher) log() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}
