package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
)

// Setting up a run: the first run records the agent and issues its first card (counting what
// its earlier cards spent); a continued run refreshes what the issuer can do.

// start is the first run's setup: check the issuer, record the agent, issue the first card.
func (wf *agentCard) start(ctx workflow.Context) error {
	var info IssuerInfo
	if err := wf.mustLocal(ctx, la.IssuerInfo, IssuerInfoInput{Issuer: wf.policy.Issuer}, &info); err != nil {
		return invalidPolicy(FieldErrors{{Field: "policy.issuer", Msg: failureMessage(err)}})
	}
	wf.st.Capabilities = info.Capabilities
	now := workflow.Now(ctx)
	// The agent's budget period is the one the reset schedule is in, not one that starts now:
	// an agent retired and created again within a period gets what is left of it, not more.
	periodStart := now
	if wf.moneyInvariant {
		if p := PrevFire(wf.resetSched, wf.loc, now); !p.IsZero() {
			periodStart = p
		}
	}
	var snap AgentSnapshot
	in := UpsertAgentInput{Policy: wf.policy, Status: StatusActive}
	if wf.moneyInvariant {
		// Cards that could have spent in this period or this month (for the monthly cap).
		l := periodStart.In(wf.loc)
		in.CardsSince = time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, wf.loc).UTC()
	}
	if err := wf.mustLocal(ctx, la.UpsertAgent, in, &snap); err != nil {
		return fmt.Errorf("record agent %s: %w", wf.policy.AgentID, err)
	}
	wf.st.Generation = snap.LastGeneration
	wf.st.LastReset = periodStart
	wf.st.NextReset = NextFire(wf.resetSched, wf.loc, now)
	if wf.rotateSched != nil {
		wf.st.NextRotation = NextFire(wf.rotateSched, wf.loc, now)
	}
	wf.st.LastReconcile = now
	wf.st.Budget.StartPeriod(periodStart, wf.loc, wf.policy.DailyLimitUSD.Minor(), wf.nextReset)
	wf.syncSearchAttributes(ctx)
	// Cards an earlier workflow for this agent left open are closed: before the new card is
	// funded (or, in runs from before that change, once it exists).
	for _, c := range snap.OpenCards {
		wf.st.Closing = append(wf.st.Closing, ClosingRef{
			Card:    CardRef{ID: c.ID, Issuer: c.Issuer, Last4: c.Last4, Generation: c.Generation, Status: c.Status},
			CloseAt: now, Reason: "left open by an earlier workflow",
		})
		wf.addReconcileCard(c.ID)
	}
	if wf.moneyInvariant {
		wf.countEarlierCards(ctx, snap)
	}
	_ = wf.issue(ctx, reasonInitial)
	return nil
}

// countEarlierCards reads what the agent's earlier cards (of a retired workflow, say) spent in
// this period and this month, from the issuer (or the ledger where the issuer cannot list), so
// a new workflow does not hand out an allowance that was already used.
func (wf *agentCard) countEarlierCards(ctx workflow.Context, snap AgentSnapshot) {
	if len(snap.RecentCards) == 0 {
		return
	}
	since := wf.st.Budget.PeriodStart
	if wf.st.Budget.MonthStart.Before(since) {
		since = wf.st.Budget.MonthStart
	}
	in := ReconcileInput{
		AgentID: wf.policy.AgentID, Issuer: wf.policy.Issuer, Timezone: wf.policy.Timezone,
		Since: since, Until: workflow.Now(ctx), IncludeAll: true, LedgerFallback: true, Reason: ReconcileEarlierCards,
	}
	for _, c := range snap.RecentCards {
		in.CardIDs = append(in.CardIDs, c.ID)
	}
	var res ReconcileResult
	if err := wf.issuerCall(ctx, ia.Reconcile, 2*time.Minute, in, &res); err != nil {
		wf.alert(ctx, AlertReconcileFailed, wf.periodKey(), "could not read what the agent's earlier cards spent in this period: "+
			failureMessage(err)+"; its first card is funded with the whole allowance")
		return
	}
	wf.applyListed(ctx, res)
}

// resume is a continued run's setup: refresh what the issuer can do (configuration may have
// changed with a deploy), make sure the search attributes are current, and bring state from
// runs before package spend up to date.
func (wf *agentCard) resume(ctx workflow.Context) {
	var info IssuerInfo
	if err := wf.local(ctx, la.IssuerInfo, IssuerInfoInput{Issuer: wf.policy.Issuer}, &info); err == nil {
		wf.st.Capabilities = info.Capabilities
	}
	b := &wf.st.Budget
	if len(b.Auths) > 0 {
		b.migrateAuths()
	}
	if b.PeriodStart.IsZero() {
		l := wf.st.LastReset.In(wf.loc)
		b.PeriodStart = wf.st.LastReset
		b.MonthStart = time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, wf.loc).UTC()
		b.MaxDailyMinor = wf.policy.DailyLimitUSD.Minor()
	}
	for _, c := range wf.allCards() {
		if c.UsageMinor == 0 && c.LegacySpentMinor != 0 {
			c.UsageMinor, c.LegacySpentMinor = c.LegacySpentMinor, 0
		}
	}
	wf.syncSearchAttributes(ctx)
}

// allCards is the current card and every closing one.
func (wf *agentCard) allCards() []*CardRef {
	var cs []*CardRef
	if wf.st.Card != nil {
		cs = append(cs, wf.st.Card)
	}
	for i := range wf.st.Closing {
		cs = append(cs, &wf.st.Closing[i].Card)
	}
	return cs
}
