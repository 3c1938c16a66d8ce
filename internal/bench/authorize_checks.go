package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

// The authorize scenario's correctness checks, against the decisions table and the
// simulator's own records.

// authorizeChecks compares the purchases with the decisions table and with the simulator's
// own records: every decision recorded once and by the rule, no agent approved past its
// budget.
func authorizeChecks(ctx context.Context, s *stack, r *Result, cards []string, purchases []purchaseResult, asked int64, non200 int) error {
	type row struct {
		AuthorizationID string `db:"authorization_id"`
		Approved        bool   `db:"approved"`
		Reason          string `db:"reason"`
		Fallback        bool   `db:"fallback"`
	}
	var rows []row
	if err := s.store.DB().SelectContext(ctx, &rows, s.store.DB().Rebind(
		`SELECT authorization_id, approved, reason, fallback FROM decisions WHERE agent_id >= ? AND agent_id < ?`),
		s.prefix+"-", s.prefix+"-~"); err != nil {
		return fmt.Errorf("read decisions: %w", err)
	}
	byID := map[string]row{}
	fallbacks := 0
	for _, d := range rows {
		byID[d.AuthorizationID] = d
		if d.Fallback {
			fallbacks++
		}
	}
	r.metric("fallbacks (decisions.fallback)", "count", float64(fallbacks)).target("= 0", fallbacks == 0)
	missing, wrong := 0, 0
	approvedBy := make(map[int]int64)
	for _, p := range purchases {
		d, ok := byID[p.AuthorizationID]
		if !ok {
			missing++
			continue
		}
		if p.Approved {
			approvedBy[p.agent] += p.AmountMinor
		}
		if d.Fallback || p.Reason == "decision_timeout" {
			continue
		}
		want := p.AmountMinor <= authMaxPerPurchaseMinor
		if d.Approved != want || p.Approved != want ||
			(!want && (d.Reason != workflows.DecideMaxPerPurchase || p.Reason != "decision_declined")) {
			wrong++
		}
	}
	r.check("every decision recorded", missing == 0 && len(rows) == len(purchases) && asked == int64(len(purchases)) && non200 == 0,
		"%d purchases, %d asked the hook, %d decisions rows, %d purchases without a row, %d answers other than 200", len(purchases), asked, len(rows), missing, non200)
	r.check("every decision by the rule", wrong == 0, "%d purchases decided otherwise than max_per_purchase_usd says (or the simulator disagreed)", wrong)

	// The simulator's own records: what it approved on each card, against the agent's budget.
	limit := money.MustParse(authDailyLimitUSD).Minor()
	over, disagree := 0, 0
	var mu sync.Mutex
	if err := parallel(ctx, len(cards), 16, func(ctx context.Context, i int) error {
		evs, err := s.simClient.ListAuthorizations(ctx, cards[i], time.Time{})
		if err != nil {
			return err
		}
		var sum int64
		for _, e := range evs {
			if e.Kind == cardwarden.KindAuthorization && e.Approved {
				sum += e.AmountMinor
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if sum > limit {
			over++
		}
		if sum != approvedBy[i] {
			disagree++
		}
		return nil
	}); err != nil {
		return fmt.Errorf("simulator records: %w", err)
	}
	r.check("Σ approved at the simulator ≤ budget", over == 0, "%d of %d agents approved past their $%s budget at the simulator", over, len(cards), authDailyLimitUSD)
	r.check("simulator records match the answers", disagree == 0, "%d of %d cards whose approved total differs from the purchases' answers", disagree, len(cards))
	return nil
}
