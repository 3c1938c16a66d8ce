package activities

import (
	"time"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/workflows"
)

// agentSnapshot is what a new workflow needs from an agent's earlier cards: the last
// generation, the cards still open, and (with since set) every card open at or after since,
// whose spend in the period the workflow counts.
func agentSnapshot(cards []store.Card, since time.Time) workflows.AgentSnapshot {
	var snap workflows.AgentSnapshot
	for _, c := range cards {
		snap.LastGeneration = max(snap.LastGeneration, c.Generation)
		sc := workflows.StoreCard{ID: c.IssuerCardID, Issuer: c.Issuer, Last4: c.Last4, Generation: c.Generation, Status: c.Status}
		if c.Status != "closed" {
			snap.OpenCards = append(snap.OpenCards, sc)
		}
		if !since.IsZero() && (!c.ClosedAt.Valid || !c.ClosedAt.Time.Before(since)) {
			snap.RecentCards = append(snap.RecentCards, sc)
		}
	}
	return snap
}
