package activities_test

import (
	"testing"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/workflows"
)

// Issue 12, item 12: retiring an agent left its credential-pull token in place, so after a
// new `agent create` with the same id the old token pulled the new card. Retirement revokes
// the token and the push key; any other status change keeps them.
func TestRetirementRevokesTheAgentsToken(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		givePushKey(t, w, "demo", "cwa_retire-test-token")
		for _, status := range []workflows.Status{workflows.StatusFrozen, workflows.StatusActive} {
			if err := w.exec(t, w.acts.SetAgentStatus, workflows.SetAgentStatusInput{AgentID: "demo", Status: status}, nil); err != nil {
				t.Fatal(err)
			}
			if row, _ := st.GetAgent(t.Context(), "demo"); row.TokenHash == "" {
				t.Fatalf("status %s revoked the token", status)
			}
		}
		if err := w.exec(t, w.acts.SetAgentStatus, workflows.SetAgentStatusInput{AgentID: "demo", Status: workflows.StatusRetired}, nil); err != nil {
			t.Fatal(err)
		}
		row, err := st.GetAgent(t.Context(), "demo")
		if err != nil || row.TokenHash != "" || row.Status != string(workflows.StatusRetired) {
			t.Fatalf("after retirement: %+v %v; want no token", row, err)
		}
		if _, err := st.GetPushKey(t.Context(), "demo"); !store.IsNotFound(err) {
			t.Fatalf("push key after retirement: %v; want none", err)
		}
		// A new agent with the same id gets a new token (ClaimAgentToken only fills an empty one).
		claimed, err := st.ClaimAgentToken(t.Context(), store.Agent{AgentID: "demo", Issuer: "sim", Status: "active"}, "new-hash")
		if err != nil || !claimed {
			t.Fatalf("claim after retirement: %v %v", claimed, err)
		}
	})
}
