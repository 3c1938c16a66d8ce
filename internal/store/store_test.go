package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
)

// The contract suite: every case runs on SQLite and on Postgres.

func TestMigrateIsIdempotent(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		applied, err := s.Migrate(context.Background())
		require.NoError(t, err)
		require.Empty(t, applied, "a second migrate must apply nothing")
	})
}

func TestAgents(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		_, err := s.GetAgent(ctx, "nobody")
		require.True(t, store.IsNotFound(err), "got %v", err)

		require.NoError(t, s.UpsertAgent(ctx, store.Agent{AgentID: "a1", Label: "support", Issuer: "sim", Status: "active", Policy: `{"x":1}`, TokenHash: "h1"}))
		// An update without a token keeps the stored hash.
		require.NoError(t, s.UpsertAgent(ctx, store.Agent{AgentID: "a1", Label: "support-2", Issuer: "sim", Status: "active", Policy: `{"x":2}`}))
		a, err := s.GetAgent(ctx, "a1")
		require.NoError(t, err)
		require.Equal(t, "support-2", a.Label)
		require.Equal(t, `{"x":2}`, a.Policy)
		require.Equal(t, "h1", a.TokenHash)
		require.False(t, a.CreatedAt.IsZero())

		require.NoError(t, s.SetAgentStatus(ctx, "a1", "frozen"))
		require.NoError(t, s.ReplaceAgentToken(ctx, store.Agent{AgentID: "a1"}, "h2"))
		a, err = s.GetAgent(ctx, "a1")
		require.NoError(t, err)
		require.Equal(t, "frozen", a.Status)
		require.Equal(t, "h2", a.TokenHash)
		require.True(t, store.IsNotFound(s.SetAgentStatus(ctx, "ghost", "frozen")))

		require.NoError(t, s.UpsertAgent(ctx, store.Agent{AgentID: "a0", Issuer: "sim", Status: "active"}))
		all, err := s.ListAgents(ctx)
		require.NoError(t, err)
		require.Len(t, all, 2)
		require.Equal(t, "a0", all[0].AgentID)
	})
}

func seedAgent(t *testing.T, s *store.Store, id string) {
	t.Helper()
	require.NoError(t, s.UpsertAgent(context.Background(), store.Agent{AgentID: id, Issuer: "sim", Status: "active"}))
}

func TestCards(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seedAgent(t, s, "a1")
		c1 := store.Card{AgentID: "a1", Generation: 1, Issuer: "sim", IssuerCardID: "card_1", Last4: "4242", ExpMonth: 12, ExpYear: 2029, Status: "active", DailyLimitMinor: 5000}
		require.NoError(t, s.RecordCard(ctx, c1))
		require.NoError(t, s.RecordCard(ctx, c1), "recording the same card again is a no-op")

		// A second card for the same generation means a double issue: refused.
		dup := c1
		dup.IssuerCardID = "card_other"
		require.Error(t, s.RecordCard(ctx, dup))
		// The same issuer card claimed by another generation is refused too.
		moved := c1
		moved.Generation = 2
		require.Error(t, s.RecordCard(ctx, moved))

		c2 := c1
		c2.Generation, c2.IssuerCardID, c2.Last4 = 2, "card_2", "1111"
		require.NoError(t, s.RecordCard(ctx, c2))

		cur, err := s.CurrentCard(ctx, "a1")
		require.NoError(t, err)
		require.Equal(t, "card_2", cur.IssuerCardID)

		closedAt := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
		require.NoError(t, s.SetCardStatus(ctx, "sim", "card_2", "closed", closedAt))
		require.NoError(t, s.SetCardStatus(ctx, "sim", "card_2", "closed", closedAt.Add(time.Hour)))
		got, err := s.CardByIssuerID(ctx, "sim", "card_2")
		require.NoError(t, err)
		require.True(t, got.ClosedAt.Valid)
		require.True(t, got.ClosedAt.Time.Equal(closedAt), "closed_at is stamped once: %v", got.ClosedAt.Time)

		cur, err = s.CurrentCard(ctx, "a1")
		require.NoError(t, err)
		require.Equal(t, "card_1", cur.IssuerCardID)

		require.NoError(t, s.SetCardDailyLimit(ctx, "sim", "card_1", 2500))
		cards, err := s.ListCards(ctx, "a1")
		require.NoError(t, err)
		require.Len(t, cards, 2)
		require.Equal(t, int64(2500), cards[0].DailyLimitMinor)
		require.Equal(t, 2, cards[1].Generation)

		_, err = s.CardByIssuerID(ctx, "sim", "nope")
		require.True(t, store.IsNotFound(err))
	})
}

func TestVault(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		v := store.VaultEntry{Issuer: "sim", IssuerCardID: "card_1", KeyID: "k1", Nonce: []byte{1, 2, 3}, Ciphertext: []byte{0, 255, 7}}
		require.NoError(t, s.PutVaultEntry(ctx, v))
		v.Ciphertext = []byte{9, 9}
		require.NoError(t, s.PutVaultEntry(ctx, v), "a retried vaulting replaces the entry")
		got, err := s.GetVaultEntry(ctx, "sim", "card_1")
		require.NoError(t, err)
		require.Equal(t, []byte{9, 9}, got.Ciphertext)
		require.Equal(t, []byte{1, 2, 3}, got.Nonce)
		_, err = s.GetVaultEntry(ctx, "sim", "card_2")
		require.True(t, store.IsNotFound(err))
	})
}

func event(id string, amount int64, at time.Time) store.LedgerEvent {
	return store.LedgerEvent{Issuer: "sim", IssuerEventID: id, AgentID: "a1", IssuerCardID: "card_1", Kind: "authorization",
		Approved: true, AmountMinor: amount, Currency: "USD", Source: store.SourceWebhook, OccurredAt: at}
}

func TestLedgerCountsEachEventOnce(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		at := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
		spend := store.SpendDelta{AgentID: "a1", Day: "2026-11-28", SpentMinor: 1250}
		require.True(t, testdb.InsertEvent(t, s, event("evt_1", 1250, at), spend))
		require.False(t, testdb.InsertEvent(t, s, event("evt_1", 1250, at), spend), "a replayed event is not new")

		// Concurrent replays of one event still count it once.
		var wg sync.WaitGroup
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.RecordEvent(ctx, event("evt_2", 100, at.Add(time.Minute)), func([]store.LedgerEvent) ([]store.SpendDelta, error) {
					return []store.SpendDelta{{AgentID: "a1", Day: "2026-11-28", SpentMinor: 100, Declines: 1}}, nil
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()

		series, err := s.SpendSeries(ctx, "a1", "2026-11-01", "2026-11-30")
		require.NoError(t, err)
		require.Len(t, series, 1)
		require.Equal(t, int64(1350), series[0].SpentMinor)
		require.Equal(t, 1, series[0].Declines)
		require.Equal(t, int64(2), testdb.CountEvents(t, s))

		got, err := s.GetEvent(ctx, "sim", "evt_1")
		require.NoError(t, err)
		require.True(t, got.OccurredAt.Equal(at), "occurred_at round-trips: %v", got.OccurredAt)
		require.True(t, got.Approved)

		evs, err := s.CardEvents(ctx, "sim", "card_1", at.Add(30*time.Second))
		require.NoError(t, err)
		require.Len(t, evs, 1)
		require.Equal(t, "evt_2", evs[0].IssuerEventID)

		recent, err := s.AgentEvents(ctx, "a1", at.Add(-time.Hour), 10)
		require.NoError(t, err)
		require.Equal(t, []string{"evt_2", "evt_1"}, []string{recent[0].IssuerEventID, recent[1].IssuerEventID})
	})
}

func TestUnsignalledEventsAreRedeliverable(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		at := time.Now().Add(-time.Hour)
		e1, e2, orphan := event("evt_1", 1, at), event("evt_2", 2, at), event("evt_3", 3, at)
		e1.ReceivedAt, e2.ReceivedAt, orphan.ReceivedAt = at, at.Add(time.Second), at
		orphan.AgentID, orphan.Orphaned = "", true
		for _, e := range []store.LedgerEvent{e1, e2, orphan} {
			testdb.InsertEvent(t, s, e)
		}
		pending, err := s.UnsignalledEvents(ctx, time.Now(), 100)
		require.NoError(t, err)
		require.Len(t, pending, 2, "orphaned events are never redelivered to a workflow")
		require.Equal(t, "evt_1", pending[0].IssuerEventID)

		require.NoError(t, s.MarkSignalled(ctx, time.Now(), store.EventKey{Issuer: "sim", ID: "evt_1"}))
		pending, err = s.UnsignalledEvents(ctx, time.Now(), 100)
		require.NoError(t, err)
		require.Len(t, pending, 1)
		require.Equal(t, "evt_2", pending[0].IssuerEventID)

		// Events received after the cut-off are still in flight, not stuck.
		pending, err = s.UnsignalledEvents(ctx, at.Add(-time.Minute), 100)
		require.NoError(t, err)
		require.Empty(t, pending)
	})
}

func TestAlertsOncePerPeriod(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a := store.Alert{AgentID: "a1", Kind: "threshold-80", Period: "2026-11-28", Message: "80% of today's budget spent"}
		got, err := s.ClaimAlert(ctx, a)
		require.NoError(t, err)
		require.Equal(t, store.AlertPending, got.Status)
		require.NoError(t, s.MarkAlertAttempt(ctx, "a1", "threshold-80", "2026-11-28", false))
		require.NoError(t, s.MarkAlertAttempt(ctx, "a1", "threshold-80", "2026-11-28", true))

		got, err = s.ClaimAlert(ctx, a)
		require.NoError(t, err)
		require.Equal(t, store.AlertSent, got.Status, "a second claim sees it sent and does not resend")
		require.Equal(t, 2, got.Attempts)
		require.True(t, got.SentAt.Valid)

		next := a
		next.Period = "2026-11-29"
		got, err = s.ClaimAlert(ctx, next)
		require.NoError(t, err)
		require.Equal(t, store.AlertPending, got.Status, "a new period alerts again")

		all, err := s.ListAlerts(ctx, "a1", 10)
		require.NoError(t, err)
		require.Len(t, all, 2)
		require.True(t, errors.Is(s.MarkAlertAttempt(ctx, "a1", "nope", "x", true), store.ErrNotFound))
	})
}

func TestAuditLog(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		require.NoError(t, s.Audit(ctx, store.AuditEntry{Actor: "admin", Action: "freeze", AgentID: "a1", Detail: "looping"}))
		require.NoError(t, s.Audit(ctx, store.AuditEntry{Actor: "agent:a1", Action: "reveal", AgentID: "a1"}))
		require.NoError(t, s.Audit(ctx, store.AuditEntry{Actor: "admin", Action: "freeze", AgentID: "a2"}))
		es, err := s.ListAudit(ctx, "a1", 10)
		require.NoError(t, err)
		require.Len(t, es, 2)
		require.Equal(t, "reveal", es[0].Action)
		all, err := s.ListAudit(ctx, "", 10)
		require.NoError(t, err)
		require.Len(t, all, 3)
	})
}

func TestOpenRejectsUnknownScheme(t *testing.T) {
	_, err := store.Open(context.Background(), "mysql://x")
	require.ErrorContains(t, err, "unsupported scheme")
	_, err = store.Open(context.Background(), "sqlite://")
	require.ErrorContains(t, err, "needs a path")
}

// Recording an event reads its authorization's earlier events; that read must go through the
// ledger_authorization index, or every webhook scans the issuer's whole ledger (it did: 83 %
// of the ledger write's CPU in `cardwarden bench --scenario ingest`).
func TestPriorEventsReadUsesTheAuthorizationIndex(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		tx, err := s.DB().BeginTxx(ctx, nil)
		require.NoError(t, err)
		defer tx.Rollback() //nolint:errcheck // read only
		explain := "EXPLAIN QUERY PLAN "
		if s.Dialect() == store.Postgres {
			// An empty table is cheapest to scan; ask which index the planner would use.
			_, err := tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off")
			require.NoError(t, err)
			explain = "EXPLAIN "
		}
		rows, err := tx.QueryxContext(ctx, explain+s.PriorEventsQuery(), "sim", "auth_1", "evt_1")
		require.NoError(t, err)
		defer rows.Close()
		var plan []string
		for rows.Next() {
			cols, err := rows.SliceScan()
			require.NoError(t, err)
			plan = append(plan, fmt.Sprint(cols...))
		}
		require.NoError(t, rows.Err())
		require.Contains(t, strings.Join(plan, "\n"), "ledger_authorization", "plan: %s", strings.Join(plan, "\n"))
	})
}
