package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
)

// Concurrent RecordEvent calls share transactions. One event that cannot be written, or whose
// card is not the agent it must be, fails alone: every other event of its transaction is
// recorded and counted once, and the failing one leaves nothing behind.
func TestSharedLedgerTransactionsFailOneEventAlone(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.UpsertAgent(ctx, store.Agent{AgentID: "a1", Issuer: "sim", Status: "active", Policy: `{"timezone":"UTC"}`}))
		require.NoError(t, s.UpsertAgent(ctx, store.Agent{AgentID: "a2", Issuer: "sim", Status: "active", Policy: "{}"}))
		for _, c := range []store.Card{{AgentID: "a1", IssuerCardID: "card_1"}, {AgentID: "a2", IssuerCardID: "card_2"}} {
			c.Generation, c.Issuer, c.Last4, c.ExpMonth, c.ExpYear, c.Status = 1, "sim", "4242", 12, 2030, "active"
			require.NoError(t, s.RecordCard(ctx, c))
		}
		at := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
		spend := func(o store.CardOwner, _ []store.LedgerEvent) ([]store.SpendDelta, error) {
			return []store.SpendDelta{{AgentID: o.AgentID, Day: "2026-11-28", SpentMinor: 100}}, nil
		}

		// The first write holds the writer (its deltas run inside its transaction) until the
		// others are queued behind it, so they share the next transaction.
		entered, release := make(chan struct{}), make(chan struct{})
		first := make(chan error, 1)
		go func() {
			_, err := s.RecordCardEvent(ctx, event("evt_first", 100, at), "", func(o store.CardOwner, p []store.LedgerEvent) ([]store.SpendDelta, error) {
				close(entered)
				<-release
				return spend(o, p)
			})
			first <- err
		}()
		<-entered
		broken := errors.New("cannot compute spend")
		type answer struct {
			owner store.CardOwner
			isNew bool
			err   error
		}
		answers := make([]answer, 12)
		var wg sync.WaitGroup
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ev, owner, deltas := event(fmt.Sprintf("evt_%02d", i), 100, at), "", spend
				switch i {
				case 3: // its spend cannot be computed
					deltas = func(store.CardOwner, []store.LedgerEvent) ([]store.SpendDelta, error) { return nil, broken }
				case 5: // claimed by a1, but card_2 is a2's
					ev.IssuerCardID, owner = "card_2", "a1"
				case 7: // a card no one owns: orphaned
					ev.IssuerCardID = "card_ghost"
				case 9: // a2's card
					ev.IssuerCardID = "card_2"
				}
				rec, err := s.RecordCardEvent(ctx, ev, owner, deltas)
				answers[i] = answer{rec.Owner, rec.New, err}
			}()
		}
		time.Sleep(200 * time.Millisecond) // let them queue behind the first
		close(release)
		wg.Wait()
		require.NoError(t, <-first)

		for i, a := range answers {
			switch i {
			case 3:
				require.ErrorIs(t, a.err, broken, "event %d", i)
				require.False(t, a.isNew)
			case 5:
				require.ErrorIs(t, a.err, store.ErrNotOwner)
				require.Equal(t, "a2", a.owner.AgentID, "the answer says whose the card is")
			case 7:
				require.NoError(t, a.err)
				require.True(t, a.isNew)
				require.Empty(t, a.owner.AgentID)
			default:
				require.NoError(t, a.err, "event %d", i)
				require.True(t, a.isNew, "event %d", i)
			}
		}
		for _, id := range []string{"evt_03", "evt_05"} {
			_, err := s.GetEvent(ctx, "sim", id)
			require.True(t, store.IsNotFound(err), "%s failed but is in the ledger: %v", id, err)
		}
		ghost, err := s.GetEvent(ctx, "sim", "evt_07")
		require.NoError(t, err)
		require.True(t, ghost.Orphaned)
		a2, err := s.GetEvent(ctx, "sim", "evt_09")
		require.NoError(t, err)
		require.Equal(t, "a2", a2.AgentID, "the event's agent is the card's owner, whatever the row said")
		require.Equal(t, int64(11), testdb.CountEvents(t, s)) // the first and 12 more, less the 2 that failed

		for agent, want := range map[string]int64{"a1": 100 * 9, "a2": 100} { // a1: first + 8 of its own
			series, err := s.SpendSeries(ctx, agent, "2026-11-01", "2026-11-30")
			require.NoError(t, err)
			require.Len(t, series, 1, agent)
			require.Equal(t, want, series[0].SpentMinor, agent)
		}

		// A replay is not new and answers the row the ledger has.
		again, err := s.RecordCardEvent(ctx, event("evt_09", 999, at), "", spend)
		require.NoError(t, err)
		require.False(t, again.New)
		require.NotNil(t, again.Existing)
		require.Equal(t, int64(100), again.Existing.AmountMinor, "the row recorded first, not the replay")
		require.Equal(t, "a2", again.Existing.AgentID)

		// Marks share the transactions too: all of them, once.
		require.NoError(t, s.MarkSignalled(ctx, at, store.EventKey{Issuer: "sim", ID: "evt_00"}, store.EventKey{Issuer: "sim", ID: "evt_01"},
			store.EventKey{Issuer: "sim", ID: "evt_missing"}))
		for _, id := range []string{"evt_00", "evt_01"} {
			ev, err := s.GetEvent(ctx, "sim", id)
			require.NoError(t, err)
			require.True(t, ev.SignalledAt.Valid, id)
		}
		ev, err := s.GetEvent(ctx, "sim", "evt_02")
		require.NoError(t, err)
		require.False(t, ev.SignalledAt.Valid)
	})
}
