package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
)

// A reveal is claimed only while the agent has had fewer than the limit of that action within
// the window; other agents' entries, other actions and older entries do not count.
func TestClaimRevealCountsTheWindow(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now()
		require.NoError(t, s.UpsertAgent(ctx, store.Agent{AgentID: "a", Issuer: "sim", Status: "active"}))
		for i, at := range []time.Time{now.Add(-2 * time.Minute), now.Add(-10 * time.Second), now} {
			require.NoError(t, s.Audit(ctx, store.AuditEntry{At: at, Actor: "agent:a", Action: "card.reveal", AgentID: "a", Detail: string(rune('0' + i))}))
		}
		require.NoError(t, s.Audit(ctx, store.AuditEntry{At: now, Actor: "agent:b", Action: "card.reveal", AgentID: "b"}))
		require.NoError(t, s.Audit(ctx, store.AuditEntry{At: now, Actor: "admin", Action: "freeze", AgentID: "a"}))
		reveal := store.AuditEntry{At: now, Actor: "agent:a", Action: "card.reveal", AgentID: "a"}
		ok, err := s.ClaimReveal(ctx, reveal, 2, now.Add(-time.Minute))
		require.NoError(t, err)
		require.False(t, ok, "two reveals in the window already")
		ok, err = s.ClaimReveal(ctx, reveal, 3, now.Add(-time.Minute))
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.ClaimReveal(ctx, reveal, 3, now.Add(-time.Minute))
		require.NoError(t, err)
		require.False(t, ok, "the claimed reveal counts")
	})
}
