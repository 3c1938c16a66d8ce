package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
)

func TestAgentTokens(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a := store.Agent{AgentID: "tok", Issuer: "sim", Status: "active"}

		// The token can be claimed before the workflow has recorded the agent.
		claimed, err := s.ClaimAgentToken(ctx, a, "h1")
		require.NoError(t, err)
		require.True(t, claimed)
		got, err := s.GetAgent(ctx, "tok")
		require.NoError(t, err)
		require.Equal(t, "h1", got.TokenHash)
		require.Equal(t, "{}", got.Policy)

		// A second claim does not replace a token someone holds.
		claimed, err = s.ClaimAgentToken(ctx, a, "h2")
		require.NoError(t, err)
		require.False(t, claimed)

		// The workflow's own upsert (no token) keeps the hash.
		require.NoError(t, s.UpsertAgent(ctx, store.Agent{AgentID: "tok", Label: "L", Issuer: "sim", Status: "active", Policy: `{"x":1}`}))
		got, err = s.GetAgent(ctx, "tok")
		require.NoError(t, err)
		require.Equal(t, "h1", got.TokenHash)
		require.Equal(t, "L", got.Label)

		require.NoError(t, s.ReplaceAgentToken(ctx, a, "h3"))
		got, err = s.GetAgent(ctx, "tok")
		require.NoError(t, err)
		require.Equal(t, "h3", got.TokenHash)
		require.Equal(t, "L", got.Label, "rotation keeps the agent's other fields")

		// An agent recorded without a token can claim one.
		require.NoError(t, s.UpsertAgent(ctx, store.Agent{AgentID: "bare", Issuer: "sim", Status: "active"}))
		claimed, err = s.ClaimAgentToken(ctx, store.Agent{AgentID: "bare", Issuer: "sim", Status: "active"}, "hb")
		require.NoError(t, err)
		require.True(t, claimed)

		require.NoError(t, s.ReplaceAgentToken(ctx, store.Agent{AgentID: "fresh", Issuer: "sim", Status: "active"}, "hf"))
		got, err = s.GetAgent(ctx, "fresh")
		require.NoError(t, err)
		require.Equal(t, "hf", got.TokenHash)

		_, err = s.ClaimAgentToken(ctx, a, "")
		require.Error(t, err)
	})
}
