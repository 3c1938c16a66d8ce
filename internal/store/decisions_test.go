package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
)

// The first decision on an authorization is the one kept: a second, different answer (a
// redelivery decided by a fallback, say) gets the first back, under concurrency too.
func TestRecordDecisionFirstAnswerWins(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
		d := store.Decision{Issuer: "sim", AuthorizationID: "auth_1", AgentID: "a", IssuerCardID: "card_1", AmountMinor: 500,
			Currency: "USD", Merchant: "OpenAI", MCC: "5734", Approved: true, Reason: "approved", LatencyMS: 12, DecidedAt: at}
		got, first, err := s.RecordDecision(ctx, d)
		require.NoError(t, err)
		require.True(t, first)
		require.Equal(t, d, got)

		other := d
		other.Approved, other.Reason, other.Fallback = false, "decision_timeout", true
		got, first, err = s.RecordDecision(ctx, other)
		require.NoError(t, err)
		require.False(t, first)
		require.True(t, got.Approved, "the first answer stands")
		require.Equal(t, "approved", got.Reason)

		// Another issuer's authorization with the same id is another decision.
		stripe := other
		stripe.Issuer = "stripe"
		_, first, err = s.RecordDecision(ctx, stripe)
		require.NoError(t, err)
		require.True(t, first)

		// Racing deliveries: exactly one is first, all see the same answer.
		var wg sync.WaitGroup
		var mu sync.Mutex
		firsts, approvals := 0, 0
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := d
				r.AuthorizationID = "auth_race"
				r.Approved = i%2 == 0
				got, first, err := s.RecordDecision(ctx, r)
				if !assertNoError(t, err) {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if first {
					firsts++
				}
				if got.Approved {
					approvals++
				}
			}()
		}
		wg.Wait()
		require.Equal(t, 1, firsts)
		require.True(t, approvals == 0 || approvals == 16, "every delivery sees the same answer, got %d approvals of 16", approvals)

		list, err := s.ListDecisions(ctx, "a", 10)
		require.NoError(t, err)
		require.Len(t, list, 3)
		_, err = s.GetDecision(ctx, "sim", "nope")
		require.True(t, store.IsNotFound(err))
	})
}

func assertNoError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}
