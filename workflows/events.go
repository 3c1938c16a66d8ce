package workflows

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/money"
)

// issuerEvent is one event of a card-event signal.
type issuerEvent = cardwarden.Event

// cardEvents is the card-event signal's payload: one event (a JSON object, as the Temporal CLI
// and older senders send it) or several of one agent's events in order (a JSON array, as the
// webhook relay sends what arrived while its previous signal was in flight: one signal, and
// one server round trip, for many events).
type cardEvents []issuerEvent

// UnmarshalJSON takes an object as one event and an array as several.
func (evs *cardEvents) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		return json.Unmarshal(b, (*[]issuerEvent)(evs))
	}
	var one issuerEvent
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	*evs = cardEvents{one}
	return nil
}

// changeRecordHandSent is the workflow.GetVersion change id of recording hand-sent events.
const changeRecordHandSent = "record-hand-sent-events"

// onSignal counts a card-event signal and handles its events in order. An event the sender did not
// record in the ledger first (a signal sent by hand from the Temporal CLI or Web UI; the
// webhook path and POST /v1/events mark theirs) is recorded by an activity, so the ledger's
// daily spend, the dashboard and reconciliation see the money the workflow counts. The ledger
// is unique by event id: recording one it already has changes nothing.
func (wf *agentCard) onSignal(ctx workflow.Context, evs cardEvents) {
	wf.st.SignalsTotal++
	wf.signalsThisRun++
	wf.wrote(eventsPerSignal)
	for _, ev := range evs {
		if wf.recordHandSent && !ev.Recorded && ev.Check() == nil && !wf.hasSeen(ev.ID) {
			wf.recordInLedger(ctx, ev)
		}
		wf.onEvent(ctx, ev)
	}
}

// recordInLedger records a hand-sent event in the ledger in the background; one that cannot be
// recorded alerts, since the ledger and the workflow now disagree about the agent's spend.
func (wf *agentCard) recordInLedger(ctx workflow.Context, ev issuerEvent) {
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = workflow.Now(ctx)
	}
	if ev.Issuer == "" {
		ev.Issuer = wf.policy.Issuer // the agent's cards are all its issuer's
	}
	in := RecordEventInput{AgentID: wf.policy.AgentID, Event: ev}
	wf.inBackground(ctx, ba.RecordEvent, in, 10*time.Minute, func(gctx workflow.Context, err error) {
		wf.alert(gctx, AlertLedgerFailed, ev.Issuer+"/"+ev.ID, fmt.Sprintf(
			"agent %s: card event %s (%s of %s %s on card %s) was signalled by hand and counted, but could not be recorded in the ledger: %s",
			wf.policy.AgentID, ev.ID, ev.Kind, money.Format(ev.AmountMinor), ev.Currency, ev.CardID, failureMessage(err)))
	})
}

// hasSeen reports whether the event id is among the last maxSeen this agent counted. It scans
// the carried list instead of keeping a map beside it: for an agent that has seen maxSeen
// events the map took ~106 KB, twice what a whole idle agent costs the worker, while a scan
// costs microseconds per event (BenchmarkSeenFullWindow).
func (wf *agentCard) hasSeen(id string) bool {
	return slices.Contains(wf.st.Seen, id)
}

// onEvent applies one issuer event, from a signal or from reconciliation: spend, alerts, the
// card's limit when a credit or overspend left it too generous, and the detector. An event id
// seen before is ignored, so redelivery never counts twice; an event no issuer could send (no
// id or card, an amount out of bounds) is ignored with a warning.
func (wf *agentCard) onEvent(ctx workflow.Context, ev issuerEvent) {
	if err := ev.Check(); err != nil {
		wf.logger(ctx).Warn("card event ignored", "error", err, "kind", ev.Kind, "card_id", ev.CardID)
		return
	}
	if wf.hasSeen(ev.ID) {
		return
	}
	wf.markSeen(ev.ID)
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = workflow.Now(ctx)
	}
	d := wf.st.Budget.Apply(ev, wf.nextReset)
	wf.settleReservation(ev)
	wf.forwardToTeam(ctx, ev)
	if c := wf.cardByID(ev.CardID); c != nil {
		c.UsageMinor += d.Usage
	}
	wf.alertOverspend(ctx, ev, d)
	wf.checkThresholds(ctx)
	if wf.overfunded() {
		_ = wf.fund(ctx, wf.st.Card, time.Time{})
	}
	if ev.Kind == cardwarden.KindAuthorization && !ev.Approved {
		wf.onDecline(ctx, ev)
	}
}

// alertOverspend alerts on spend no limit stopped: every over-capture and force-post (runs
// from before changeMoneyInvariant: the first of the day), and an approval that took the
// period past its allowance.
func (wf *agentCard) alertOverspend(ctx workflow.Context, ev issuerEvent, d Delta) {
	card := ev.CardID
	if c := wf.cardByID(ev.CardID); c != nil {
		card = fmt.Sprintf("****%s (%s)", c.Last4, c.ID)
	}
	over := d.Overspend
	if wf.moneyInvariant {
		over = d.OverspendAny
	}
	if over > 0 && (wf.moneyInvariant || !wf.st.OverspendAlerted) {
		wf.st.OverspendAlerted = true
		what := "a capture above its authorization"
		if ev.Kind == cardwarden.KindForceCapture || ev.AuthorizationID == "" {
			what = "a force-post"
		}
		period := wf.st.Budget.Day
		if wf.moneyInvariant {
			period = wf.periodKey() + "/" + ev.ID
		}
		wf.alert(ctx, AlertOverspend, period, fmt.Sprintf(
			"agent %s overspent by %s %s through %s on card %s (event %s, %s); limits cannot stop this; %s overspent in this period, %s left",
			wf.policy.AgentID, money.Format(over), wf.policy.Currency, what, card, ev.ID, ev.Kind,
			money.Format(wf.st.Budget.OverspendTodayMinor), money.Format(wf.remaining())))
	}
	if wf.moneyInvariant && ev.Kind == cardwarden.KindAuthorization && d.Spent > 0 && wf.st.Budget.ApprovedNet() > wf.st.Budget.MaxDailyMinor {
		wf.alert(ctx, AlertOverspend, wf.periodKey()+"/"+ev.ID, fmt.Sprintf(
			"agent %s: the issuer approved %s %s on card %s (event %s), taking the period's approved spend to %s against a daily limit of %s",
			wf.policy.AgentID, money.Format(ev.AmountMinor), wf.policy.Currency, card, ev.ID,
			money.Format(wf.st.Budget.ApprovedNet()), money.Format(wf.st.Budget.MaxDailyMinor)))
	}
}

// markSeen appends the id, dropping the oldest beyond maxSeen first, in place: the list never
// outgrows maxSeen, and a full window costs no allocation per event.
func (wf *agentCard) markSeen(id string) {
	if n := len(wf.st.Seen) - maxSeen + 1; n > 0 {
		wf.st.Seen = slices.Delete(wf.st.Seen, 0, n)
	}
	wf.st.Seen = append(wf.st.Seen, id)
}

// checkThresholds alerts, once a day each, when today's spend crosses a threshold.
func (wf *agentCard) checkThresholds(ctx workflow.Context) {
	daily := wf.policy.DailyLimitUSD.Minor()
	for _, pct := range wf.st.Budget.CrossedThresholds(daily, wf.policy.Alerts.ThresholdsPct, wf.st.AlertedThresholds) {
		wf.st.AlertedThresholds = append(wf.st.AlertedThresholds, pct)
		wf.alert(ctx, fmt.Sprintf("%s-%d", AlertThreshold, pct), wf.periodKey(), fmt.Sprintf(
			"agent %s has spent %s of its %s USD daily limit (%d%% threshold) on %s",
			wf.policy.AgentID, money.Format(wf.st.Budget.SpentTodayMinor), wf.policy.DailyLimitUSD, pct, wf.st.Budget.Day))
	}
}

// onDecline records a decline and feeds the detector. A burst freezes the card in the same
// workflow task that saw it: the pause activity is scheduled before the task completes.
func (wf *agentCard) onDecline(ctx workflow.Context, ev issuerEvent) {
	wf.st.RecentDeclines = append(wf.st.RecentDeclines, DeclineView{
		At: ev.OccurredAt, EventID: ev.ID, CardID: ev.CardID, Reason: string(ev.DeclineReason),
		AmountUSD: money.Amount(ev.AmountMinor), Merchant: ev.MerchantName,
	})
	if n := len(wf.st.RecentDeclines) - maxRecentDeclines; n > 0 {
		wf.st.RecentDeclines = append([]DeclineView(nil), wf.st.RecentDeclines[n:]...)
	}
	if wf.st.Status == StatusRetired || wf.retiring {
		return
	}
	at := ev.OccurredAt
	if at.IsZero() {
		at = workflow.Now(ctx)
	}
	verdict, count := wf.st.Detector.Observe(wf.policy.Anomaly, at, string(ev.DeclineReason))
	switch verdict {
	case VerdictHard:
		wf.st.Detector.Reset()
		if wf.st.Status != StatusRevoked {
			_ = wf.revoke(ctx, fmt.Sprintf("decline with hard reason %q (event %s)", ev.DeclineReason, ev.ID), "")
		}
	case VerdictBurst:
		card := wf.st.Card
		if wf.st.Status != StatusActive || card == nil {
			wf.st.Detector.Reset()
			return
		}
		card.Freezes++
		what := fmt.Sprintf("%d weighted declines within %s", count, wf.policy.Anomaly.Window)
		if card.Freezes >= wf.policy.Anomaly.RevokeAfterFreezes {
			_ = wf.revoke(ctx, fmt.Sprintf("decline burst (%s), freeze %d of this card (revoke_after_freezes %d)",
				what, card.Freezes, wf.policy.Anomaly.RevokeAfterFreezes), "")
			return
		}
		_ = wf.freeze(ctx, "decline burst: "+what, "", wf.st.Detector.FirstAt())
	}
}
