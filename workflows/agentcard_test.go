package workflows_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/workflows"
)

// Sunday 3 January 2027, 10:00 UTC: the first reset is at midnight, the first rotation on
// Monday at 03:00.
var sunday = time.Date(2027, 1, 3, 10, 0, 0, 0, time.UTC)

func policyJSON(extra string) string {
	s := `{"agent_id":"demo","daily_limit_usd":25`
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

func retireAt(t time.Time) string { return `"retire_at":"` + t.UTC().Format(time.RFC3339) + `"` }

func TestStartIssuesACardAndRetireClosesIt(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	var st workflows.StateView
	h.at(time.Minute, func() { st = h.state() })
	h.run(policyJSON(retireAt(sunday.Add(2 * time.Hour))))

	if st.Status != workflows.StatusActive || st.Card == nil || st.Card.ID != "card-1" || st.Generation != 1 {
		t.Fatalf("state after start: %+v", st)
	}
	if st.Budget.DailyLimitUSD.String() != "25.00" || st.Budget.RemainingTodayUSD.String() != "25.00" || st.Budget.SpentTodayUSD.String() != "0.00" {
		t.Fatalf("budget: %+v", st.Budget)
	}
	if st.Policy.Issuer != "sim" || st.Timezone != "UTC" {
		t.Fatalf("defaults not applied: %+v", st.Policy)
	}
	f.lock(func() {
		if len(f.issued) != 1 {
			t.Fatalf("issued %d cards", len(f.issued))
		}
		in := f.issued[0]
		if in.IdempotencyKey != "cardwarden:agent/demo:gen:1" || in.Generation != 1 || in.Reason != "initial" {
			t.Fatalf("issue input: %+v", in)
		}
		if !slices.Equal(in.Limits, []issuer.SpendLimit{{AmountMinor: 2500, Interval: issuer.AllTime}}) {
			t.Fatalf("limits: %v", in.Limits)
		}
		if len(f.agents) != 1 || f.agents[0].Policy.AgentID != "demo" {
			t.Fatalf("agent not recorded: %+v", f.agents)
		}
		if !slices.Equal(f.closed, []string{"card-1"}) {
			t.Fatalf("closed: %v", f.closed)
		}
		if f.statuses[len(f.statuses)-1] != workflows.StatusRetired {
			t.Fatalf("statuses: %v", f.statuses)
		}
	})
	r := h.result()
	if r.Status != workflows.StatusRetired || r.Generation != 1 || r.Reason != "retire_at reached" {
		t.Fatalf("result: %+v", r)
	}
}

func TestInvalidPolicyFailsFastWithoutACard(t *testing.T) {
	cases := []struct {
		name, input, want string
		notConfigured     bool
		workflowID        string
	}{
		{name: "unknown zone", input: policyJSON(`"timezone":"Mars/Base"`), want: `policy.timezone: unknown time zone "Mars/Base"`},
		{name: "unknown field", input: policyJSON(`"dailyLimit":5`), want: `policy.dailyLimit: unknown field`},
		{name: "no budget", input: `{"agent_id":"demo"}`, want: `policy.daily_limit_usd: required`},
		{name: "not json object", input: `"demo"`, want: `policy: must be a JSON object`},
		// A null input (a hand start with --input null) arrives as a nil *Input.
		{name: "null input", input: `null`, want: `policy.agent_id: required`},
		{name: "past retire_at", input: policyJSON(retireAt(sunday.Add(-time.Hour))), want: `policy.retire_at: 2027-01-03T09:00:00Z is in the past`},
		{name: "issuer missing", input: policyJSON(`"issuer":"stripe"`), notConfigured: true, want: `policy.issuer: issuer "stripe" is not configured`},
		{name: "wrong workflow id", input: `{"agent_id":"other","daily_limit_usd":25}`, want: `policy.agent_id: the workflow id must be "agent/other", got "agent/demo"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFake()
			f.notConfigured = c.notConfigured
			h := newHarness(t, f, sunday)
			h.run(c.input)
			err := h.env.GetWorkflowError()
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrTypeInvalidPolicy || !appErr.NonRetryable() {
				t.Fatalf("want a non-retryable InvalidPolicy error, got %v", err)
			}
			if !strings.Contains(appErr.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", appErr.Error(), c.want)
			}
			f.lock(func() {
				if len(f.issued) != 0 {
					t.Fatalf("a card was issued for an invalid policy: %+v", f.issued)
				}
			})
		})
	}
}

func TestDailyResetGivesTheCardTodaysBudget(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday) // first reset at 2027-01-04 00:00 UTC, 14h after start
	var before, after workflows.StateView
	h.at(time.Hour, func() { h.signal(approved("e1", "card-1", sunday.Add(time.Hour), 1000)) })
	h.at(13*time.Hour, func() { before = h.state() })
	h.at(14*time.Hour+time.Minute, func() { after = h.state() })
	h.run(policyJSON(`"rotate_cron":"off",` + retireAt(sunday.Add(15*time.Hour))))

	if before.Budget.SpentTodayUSD.String() != "10.00" || before.Budget.RemainingTodayUSD.String() != "15.00" {
		t.Fatalf("before reset: %+v", before.Budget)
	}
	if after.Budget.SpentTodayUSD.String() != "0.00" || after.Budget.RemainingTodayUSD.String() != "25.00" || after.Budget.Day != "2027-01-04" {
		t.Fatalf("after reset: %+v", after.Budget)
	}
	if after.Resets != 1 || after.Card.SpentUSD.String() != "10.00" {
		t.Fatalf("after reset: %+v", after)
	}
	f.lock(func() {
		// The card has spent 10.00 in its life; 25.00 more is today's budget.
		want := []limitCall{{CardID: "card-1", Limits: []issuer.SpendLimit{{AmountMinor: 3500, Interval: issuer.AllTime}}}}
		if len(f.limits) != 1 || !slices.Equal(f.limits[0].Limits, want[0].Limits) {
			t.Fatalf("limit updates: %+v", f.limits)
		}
		if !f.limits[0].ResetAt.Equal(time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("limit update made for the reset at %s, want the reset instant", f.limits[0].ResetAt)
		}
		if len(f.reconciles) != 1 || !inLeadBefore(f.reconciles[0].Until, time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("reconciles: %+v", f.reconciles)
		}
	})
}

func TestMonthlyCapLimitsTheDailyBudget(t *testing.T) {
	f := newFake()
	start := time.Date(2027, 1, 30, 10, 0, 0, 0, time.UTC)
	h := newHarness(t, f, start)
	var day2, feb workflows.StateView
	h.at(time.Hour, func() { h.signal(approved("e1", "card-1", start.Add(time.Hour), 2000)) })
	h.at(15*time.Hour, func() { day2 = h.state() }) // 31 January
	h.at(39*time.Hour, func() { feb = h.state() })  // 1 February
	h.run(policyJSON(`"monthly_limit_usd":30,"rotate_cron":"off",` + retireAt(start.Add(40*time.Hour))))

	if day2.Budget.RemainingTodayUSD.String() != "10.00" || day2.Budget.RemainingMonthUSD.String() != "10.00" {
		t.Fatalf("31 Jan: %+v", day2.Budget)
	}
	if feb.Budget.RemainingTodayUSD.String() != "25.00" || feb.Budget.SpentMonthUSD.String() != "0.00" {
		t.Fatalf("1 Feb: %+v", feb.Budget)
	}
	f.lock(func() {
		if got := f.limits[0].Limits[0].AmountMinor; got != 2000+1000 {
			t.Fatalf("31 Jan limit %d, want spent 20.00 + monthly remainder 10.00", got)
		}
		if got := f.limits[1].Limits[0].AmountMinor; got != 2000+2500 {
			t.Fatalf("1 Feb limit %d", got)
		}
	})
}

// Where limits cannot change, the day's new card replaces the old one, which is closed first:
// the old card still holds what was left of its own day.
func TestDailyReissueWhereLimitsCannotChange(t *testing.T) {
	f := newFake()
	f.caps = issuer.Capabilities{LimitIntervals: []issuer.Interval{issuer.AllTime}, Reveal: true}
	h := newHarness(t, f, sunday)
	var during workflows.StateView
	h.at(14*time.Hour+time.Minute, func() { during = h.state() })
	h.run(policyJSON(`"rotate_cron":"off",` + retireAt(sunday.Add(16*time.Hour))))

	if during.Card.ID != "card-2" || during.Generation != 2 || during.Reissues != 1 || len(during.ClosingCards) != 0 {
		t.Fatalf("after the reset: %+v", during)
	}
	f.lock(func() {
		if len(f.issued) < 2 || f.issued[1].Reason != "daily-reissue" || f.issued[1].Limits[0].AmountMinor != 2500 {
			t.Fatalf("reissue: %+v", f.issued)
		}
		if len(f.limits) != 0 {
			t.Fatalf("limits updated on an issuer that cannot: %+v", f.limits)
		}
		if i, j := slices.Index(f.calls, "closed card-1"), slices.Index(f.calls, "IssueCard gen2"); i < 0 || j < i {
			t.Fatalf("card-1 must be closed before card-2 is issued: %v", f.calls)
		}
	})
}

func TestWeeklyRotationKeepsTheOldCardForTheGracePeriod(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday) // rotation: Monday 2027-01-04 03:00 UTC = +17h
	var during, after workflows.StateView
	h.at(time.Hour, func() { h.signal(approved("e1", "card-1", sunday.Add(time.Hour), 700)) })
	h.at(17*time.Hour+30*time.Minute, func() { during = h.state() })
	h.at(18*time.Hour+time.Minute, func() { after = h.state() })
	h.run(policyJSON(retireAt(sunday.Add(19 * time.Hour))))

	if during.Card.ID != "card-2" || during.Rotations != 1 || len(during.ClosingCards) != 1 || during.ClosingCards[0].ID != "card-1" {
		t.Fatalf("during grace: %+v", during)
	}
	if !during.ClosingCards[0].CloseAt.Equal(time.Date(2027, 1, 4, 4, 0, 0, 0, time.UTC)) {
		t.Fatalf("close at %s", during.ClosingCards[0].CloseAt)
	}
	if len(after.ClosingCards) != 0 || after.Card.ID != "card-2" {
		t.Fatalf("after grace: %+v", after)
	}
	f.lock(func() {
		if f.issued[1].Reason != "scheduled-rotation" || f.issued[1].IdempotencyKey != "cardwarden:agent/demo:gen:2" {
			t.Fatalf("rotation issue: %+v", f.issued[1])
		}
		// The old card is capped and read before the new card exists; the new one is issued
		// capped and then funded with the period's allowance.
		want := []string{"UpdateLimit card-1 0", "Reconcile capped", "IssueCard gen2", "UpdateLimit card-2 2500"}
		if i := slices.Index(f.calls, want[0]); i < 0 || !slices.Equal(f.calls[i:i+len(want)], want) {
			t.Fatalf("rotation calls %v, want %v in order", f.calls, want)
		}
		if f.issued[1].Limits[0].AmountMinor != 0 {
			t.Fatalf("the new card was issued with money on it: %+v", f.issued[1].Limits)
		}
		// card-1 at the end of its grace period, card-2 when the agent retires.
		if !slices.Equal(f.closed, []string{"card-1", "card-2"}) {
			t.Fatalf("closed: %v", f.closed)
		}
	})
}

func TestFailedRotationKeepsTheOldCardAlertsAndRetries(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	var failed workflows.StateView
	h.at(17*time.Hour-time.Minute, func() { f.lock(func() { f.failIssue = 1 }) })
	h.at(17*time.Hour+time.Minute, func() { failed = h.state() })
	h.run(policyJSON(retireAt(sunday.Add(19 * time.Hour))))

	if failed.Card.ID != "card-1" || !failed.IssuePending || failed.Status != workflows.StatusActive {
		t.Fatalf("after the failed issue: %+v", failed)
	}
	if !slices.Contains(f.alertKinds(), workflows.AlertRotationFailed) {
		t.Fatalf("no rotation-failed alert: %v", f.alertKinds())
	}
	f.lock(func() {
		if len(f.issued) != 3 || !slicesEqualInputs(f.issued[1], f.issued[2]) {
			t.Fatalf("the retry must repeat the failed input exactly: %+v", f.issued)
		}
		if len(f.cards) != 2 {
			t.Fatalf("cards: %d", len(f.cards))
		}
	})
	if r := h.result(); r.Generation != 2 || r.Rotations != 1 {
		t.Fatalf("result: %+v", r)
	}
}

func slicesEqualInputs(a, b workflows.IssueCardInput) bool {
	return a.IdempotencyKey == b.IdempotencyKey && a.Generation == b.Generation && slices.Equal(a.Limits, b.Limits) && a.Label == b.Label
}

func TestExpiryRotatesAtCardTTL(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	var st workflows.StateView
	h.at(48*time.Hour+time.Minute, func() { st = h.state() })
	h.run(policyJSON(`"rotate_cron":"off","card_ttl":"48h",` + retireAt(sunday.Add(50*time.Hour))))
	if st.Card.ID != "card-2" || st.Rotations != 1 {
		t.Fatalf("state: %+v", st)
	}
	f.lock(func() {
		if f.issued[1].Reason != "expiry" {
			t.Fatalf("issued: %+v", f.issued)
		}
	})
}

func TestDeclineBurstFreezesAndHumanUnfreezes(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	t0 := sunday.Add(time.Hour)
	var frozen, active workflows.StateView
	var freezeAgain, unfreeze, unfreezeAgain *updateResult
	for i := range 5 {
		h.at(time.Hour+time.Duration(i)*10*time.Second, func() {
			h.signal(decline("d"+string(rune('0'+i)), "card-1", t0.Add(time.Duration(i)*10*time.Second), cardwarden.ReasonSpendingLimit))
		})
	}
	// The freeze happens in the workflow task that saw the fifth decline: nothing else wakes
	// the workflow before this check. It is not 1 ms later because, while an activity runs,
	// the test environment fires the next timer after that much wall time, which a loaded
	// machine can exceed.
	h.at(time.Hour+50*time.Second, func() {
		frozen = h.state()
		f.lock(func() {
			if !slices.Equal(f.paused, []string{"card-1"}) {
				t.Errorf("card not paused: %v", f.paused)
			}
		})
	})
	h.at(2*time.Hour, func() { freezeAgain = h.update(workflows.UpdateFreeze, workflows.ReasonRequest{Reason: "again"}) })
	h.at(3*time.Hour, func() {
		unfreeze = h.update(workflows.UpdateUnfreeze, workflows.ReasonRequest{Reason: "checked the agent", Actor: "alice"})
	})
	h.at(3*time.Hour+time.Minute, func() { active = h.state() })
	h.at(4*time.Hour, func() { unfreezeAgain = h.update(workflows.UpdateUnfreeze, workflows.ReasonRequest{}) })
	h.run(policyJSON(retireAt(sunday.Add(5 * time.Hour))))

	if frozen.Status != workflows.StatusFrozen || frozen.Card.Status != "paused" || frozen.Freezes != 1 || len(frozen.RecentDeclines) != 5 {
		t.Fatalf("frozen state: %+v", frozen)
	}
	if !strings.Contains(frozen.StatusReason, "decline burst") {
		t.Fatalf("reason: %q", frozen.StatusReason)
	}
	if freezeAgain.rejected == nil || !strings.Contains(freezeAgain.rejected.Error(), "already frozen") {
		t.Fatalf("freezing a frozen card: %+v", freezeAgain)
	}
	f.lock(func() {
		// Stopping a card never waits behind the issuer queue's reset traffic; undoing it can.
		// It runs on the workflow's own queue, where the deciding worker starts it eagerly.
		if q := f.queues[workflows.ActivityPauseCard]; !slices.Equal(q, []string{workflows.TaskQueue}) {
			t.Errorf("PauseCard on %v, want the workflow's queue %s", q, workflows.TaskQueue)
		}
		if q := f.queues[workflows.ActivityResumeCard]; !slices.Equal(q, []string{workflows.IssuerTaskQueue}) {
			t.Errorf("ResumeCard on %v, want the issuer queue", q)
		}
	})
	if !unfreeze.done || unfreeze.rejected != nil || unfreeze.err != nil || unfreeze.view.Status != workflows.StatusActive {
		t.Fatalf("unfreeze: %+v", unfreeze)
	}
	if active.Status != workflows.StatusActive || active.Card.Status != "active" || active.Card.ID != "card-1" {
		t.Fatalf("after unfreeze: %+v", active)
	}
	if unfreezeAgain.rejected == nil || !strings.Contains(unfreezeAgain.rejected.Error(), "not frozen") {
		t.Fatalf("unfreezing an active card: %+v", unfreezeAgain)
	}
	if !slices.Contains(f.alertKinds(), workflows.AlertFrozen) {
		t.Fatalf("alerts: %v", f.alertKinds())
	}
	f.lock(func() {
		if !slices.Equal(f.resumed, []string{"card-1"}) {
			t.Fatalf("resumed: %v", f.resumed)
		}
		var actions []string
		for _, a := range f.audits {
			actions = append(actions, a.Actor+":"+a.Action)
		}
		if !slices.Contains(actions, "workflow:auto-freeze") || !slices.Contains(actions, "alice:unfreeze") {
			t.Fatalf("audit: %v", actions)
		}
	})
}

func TestHardReasonRevokesAndUnfreezeReissues(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	var revoked, reissued workflows.StateView
	var freeze *updateResult
	h.at(time.Hour, func() { h.signal(decline("x1", "card-1", sunday.Add(time.Hour), cardwarden.ReasonSuspectedFraud)) })
	h.at(time.Hour+time.Second, func() { revoked = h.state() })
	h.at(2*time.Hour, func() { freeze = h.update(workflows.UpdateFreeze, workflows.ReasonRequest{}) })
	h.at(3*time.Hour, func() { h.update(workflows.UpdateUnfreeze, workflows.ReasonRequest{Reason: "new card please"}) })
	h.at(3*time.Hour+time.Second, func() { reissued = h.state() })
	h.run(policyJSON(retireAt(sunday.Add(4 * time.Hour))))

	if revoked.Status != workflows.StatusRevoked || revoked.Card != nil || revoked.Revocations != 1 {
		t.Fatalf("revoked: %+v", revoked)
	}
	if freeze.rejected == nil || !strings.Contains(freeze.rejected.Error(), "revoked") {
		t.Fatalf("freeze of a revoked card: %+v", freeze)
	}
	if reissued.Status != workflows.StatusActive || reissued.Card == nil || reissued.Card.ID != "card-2" || reissued.Generation != 2 {
		t.Fatalf("after unfreeze: %+v", reissued)
	}
	if !slices.Contains(f.alertKinds(), workflows.AlertRevoked) {
		t.Fatalf("alerts: %v", f.alertKinds())
	}
	f.lock(func() {
		if f.closed[0] != "card-1" {
			t.Fatalf("closed: %v", f.closed)
		}
	})
}

func TestRepeatedFreezesRevoke(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	burst := func(at time.Duration, tag string) {
		for i := range 3 {
			h.at(at+time.Duration(i)*time.Second, func() {
				h.signal(decline(tag+string(rune('0'+i)), "card-1", sunday.Add(at+time.Duration(i)*time.Second), cardwarden.ReasonMerchantBlocked))
			})
		}
	}
	var first, second workflows.StateView
	burst(time.Hour, "a")
	h.at(time.Hour+time.Minute, func() { first = h.state() })
	h.at(2*time.Hour, func() { h.update(workflows.UpdateUnfreeze, workflows.ReasonRequest{}) })
	burst(3*time.Hour, "b")
	h.at(3*time.Hour+time.Minute, func() { second = h.state() })
	h.run(policyJSON(`"anomaly":{"max_declines":3,"revoke_after_freezes":2},` + retireAt(sunday.Add(4*time.Hour))))

	if first.Status != workflows.StatusFrozen {
		t.Fatalf("first burst: %+v", first)
	}
	if second.Status != workflows.StatusRevoked || second.Card != nil || !strings.Contains(second.StatusReason, "revoke_after_freezes 2") {
		t.Fatalf("second burst: %+v", second)
	}
	f.lock(func() {
		if q := f.queues[workflows.ActivityCloseCard]; len(q) == 0 || q[0] != workflows.TaskQueue {
			t.Errorf("the revocation closed the card on %v, want the workflow's queue %s", q, workflows.TaskQueue)
		}
	})
}

func TestSetBudgetValidatesAndApplies(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	var negative, empty, unknown, ok *updateResult
	h.at(time.Hour, func() { h.signal(approved("e1", "card-1", sunday.Add(time.Hour), 500)) })
	h.at(2*time.Hour, func() {
		negative = h.update(workflows.UpdateSetBudget, rawJSON(`{"daily_limit_usd":-5}`))
		empty = h.update(workflows.UpdateSetBudget, rawJSON(`{}`))
		unknown = h.update(workflows.UpdateSetBudget, rawJSON(`{"daily":5}`))
	})
	h.at(3*time.Hour, func() {
		ok = h.update(workflows.UpdateSetBudget, rawJSON(`{"daily_limit_usd":"40.00","monthly_limit_usd":100,"reason":"more work"}`))
	})
	h.run(policyJSON(retireAt(sunday.Add(4 * time.Hour))))

	for name, r := range map[string]*updateResult{"negative": negative, "empty": empty, "unknown": unknown} {
		if r.rejected == nil {
			t.Errorf("%s budget accepted", name)
		}
	}
	if !strings.Contains(negative.rejected.Error(), "request.daily_limit_usd: must be greater than 0") ||
		!strings.Contains(unknown.rejected.Error(), "request.daily: unknown field") {
		t.Fatalf("messages: %v / %v", negative.rejected, unknown.rejected)
	}
	if ok.err != nil || ok.rejected != nil {
		t.Fatalf("valid budget: %+v", ok)
	}
	b := ok.view.Budget
	if b.DailyLimitUSD.String() != "40.00" || b.RemainingTodayUSD.String() != "35.00" || b.MonthlyLimitUSD.String() != "100.00" {
		t.Fatalf("budget after update: %+v", b)
	}
	f.lock(func() {
		// Only the valid update touched the card: 5.00 spent + 35.00 left.
		if len(f.limits) != 1 || f.limits[0].Limits[0].AmountMinor != 4000 {
			t.Fatalf("limits: %+v", f.limits)
		}
		if last := f.agents[len(f.agents)-1]; last.Policy.DailyLimitUSD.Minor() != 4000 {
			t.Fatalf("new policy not recorded: %+v", last.Policy)
		}
	})
}

func TestRetireUpdateCompletesTheWorkflow(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	var r *updateResult
	h.at(time.Hour, func() {
		r = h.update(workflows.UpdateRetire, workflows.ReasonRequest{Reason: "project over", Actor: "bob"})
	})
	h.run(policyJSON(""))
	if r.err != nil || r.view.Status != workflows.StatusRetired {
		t.Fatalf("retire: %+v", r)
	}
	if res := h.result(); res.Status != workflows.StatusRetired || res.Reason != "project over" {
		t.Fatalf("result: %+v", res)
	}
}

func TestCancelRetiresTheAgent(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	h.at(time.Hour, func() { h.env.CancelWorkflow() })
	h.run(policyJSON(""))
	var canceled *temporal.CanceledError
	if err := h.env.GetWorkflowError(); !errors.As(err, &canceled) {
		t.Fatalf("want cancelled, got %v", err)
	}
	f.lock(func() {
		if !slices.Equal(f.closed, []string{"card-1"}) {
			t.Fatalf("a cancelled agent kept its card: %v", f.closed)
		}
	})
}

// Every over-capture and force-post alerts on its own; thresholds alert once per period.
func TestOverspendAlertsPerEventAndThresholdsOncePerPeriod(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	t0 := sunday.Add(time.Hour)
	h.at(time.Hour, func() { h.signal(approved("a1", "card-1", t0, 2000)) }) // 80%
	h.at(time.Hour+time.Minute, func() {
		h.signal(cardwarden.Event{ID: "c1", Kind: cardwarden.KindCapture, CardID: "card-1", AuthorizationID: "auth-a1", Approved: true, AmountMinor: 2600, OccurredAt: t0})
	})
	h.at(time.Hour+2*time.Minute, func() {
		h.signal(cardwarden.Event{ID: "f1", Kind: cardwarden.KindForceCapture, CardID: "card-1", Approved: true, AmountMinor: 100, OccurredAt: t0})
	})
	var st workflows.StateView
	h.at(time.Hour+3*time.Minute, func() { st = h.state() })
	h.run(policyJSON(retireAt(sunday.Add(2 * time.Hour))))

	if st.Budget.SpentTodayUSD.String() != "27.00" || st.Budget.OverspendTodayUSD.String() != "7.00" || st.Budget.RemainingTodayUSD.String() != "0.00" {
		t.Fatalf("budget: %+v", st.Budget)
	}
	kinds := f.alertKinds()
	slices.Sort(kinds)
	if want := []string{"overspend", "overspend", "threshold-100", "threshold-80"}; !slices.Equal(kinds, want) {
		t.Fatalf("alerts %v, want %v", kinds, want)
	}
	f.lock(func() {
		for _, a := range f.alerts {
			if a.Kind == workflows.AlertOverspend && !strings.Contains(a.Message, "card ****4001") {
				t.Errorf("overspend alert does not name the card: %s", a.Message)
			}
		}
	})
}

func TestReconcileAppliesMissedEventsOnce(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	missed := approved("m1", "card-1", sunday.Add(13*time.Hour), 1500)
	f.missed = []cardwarden.Event{missed}
	var st workflows.StateView
	h.at(14*time.Hour+time.Minute, func() {
		h.signal(missed) // the webhook finally arrives: already counted
		h.signal(approved("late", "card-1", sunday.Add(14*time.Hour), 100))
	})
	h.at(14*time.Hour+2*time.Minute, func() { st = h.state() })
	h.run(policyJSON(`"rotate_cron":"off",` + retireAt(sunday.Add(15*time.Hour))))

	if st.Budget.SpentMonthUSD.String() != "16.00" || st.Budget.SpentTodayUSD.String() != "1.00" {
		t.Fatalf("budget: %+v", st.Budget)
	}
	if st.Card.SpentUSD.String() != "16.00" {
		t.Fatalf("card spend: %+v", st.Card)
	}
	if !slices.Contains(f.alertKinds(), workflows.AlertReconcile) {
		t.Fatalf("alerts: %v", f.alertKinds())
	}
	f.lock(func() {
		// The limit set at the reset already counts the missed 15.00 on the card.
		if got := f.limits[0].Limits[0].AmountMinor; got != 1500+2500 {
			t.Fatalf("limit after reconcile: %d", got)
		}
	})
}

func TestIssueRejectedAsInvalidIsRetriedUnderTheSameKey(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	h.at(17*time.Hour-time.Minute, func() {
		f.lock(func() { f.failIssue, f.failIssueType = 1, workflows.ErrTypeIssuerInvalid })
	})
	// Spend between the failed attempt and its retry: the new card gets the period's remainder.
	h.at(17*time.Hour+time.Minute, func() { h.signal(approved("e1", "card-1", sunday.Add(17*time.Hour), 1000)) })
	h.run(policyJSON(retireAt(sunday.Add(19 * time.Hour))))
	f.lock(func() {
		if len(f.issued) != 3 {
			t.Fatalf("issued: %+v", f.issued)
		}
		failed, retry := f.issued[1], f.issued[2]
		if failed.IdempotencyKey != retry.IdempotencyKey || failed.Generation != 2 || retry.Generation != 2 {
			t.Fatalf("keys: %s %s", failed.IdempotencyKey, retry.IdempotencyKey)
		}
		if failed.Limits[0].AmountMinor != 0 || retry.Limits[0].AmountMinor != 0 {
			t.Fatalf("a replacement card is issued capped: %v then %v", failed.Limits, retry.Limits)
		}
		if last := f.limits[len(f.limits)-1]; last.CardID != "card-2" || last.Limits[0].AmountMinor != 1500 {
			t.Fatalf("card-2 funded with %+v, want the 15.00 left", last)
		}
	})
}

func TestFixedLimitIssuerPutsTheCardAwayWhenTheMonthIsSpent(t *testing.T) {
	f := newFake()
	f.caps = issuer.Capabilities{LimitIntervals: []issuer.Interval{issuer.AllTime}, Reveal: true}
	start := time.Date(2027, 1, 29, 10, 0, 0, 0, time.UTC)
	h := newHarness(t, f, start)
	var jan30, jan31, feb1 workflows.StateView
	h.at(time.Hour, func() { h.signal(approved("e1", "card-1", start.Add(time.Hour), 2500)) })
	h.at(15*time.Hour, func() { jan30 = h.state() })
	h.at(16*time.Hour, func() { h.signal(approved("e2", "card-2", start.Add(16*time.Hour), 500)) })
	h.at(39*time.Hour, func() { jan31 = h.state() })
	h.at(63*time.Hour, func() { feb1 = h.state() })
	h.run(policyJSON(`"monthly_limit_usd":30,"rotate_cron":"off",` + retireAt(start.Add(64*time.Hour))))

	if jan30.Card == nil || jan30.Card.ID != "card-2" || jan30.Budget.RemainingTodayUSD.String() != "5.00" {
		t.Fatalf("30 Jan: %+v", jan30)
	}
	if jan31.Card != nil || jan31.Status != workflows.StatusActive || jan31.Budget.RemainingTodayUSD.String() != "0.00" {
		t.Fatalf("31 Jan, month spent: %+v", jan31)
	}
	if feb1.Card == nil || feb1.Card.ID != "card-3" || feb1.Generation != 3 {
		t.Fatalf("1 Feb: %+v", feb1)
	}
	f.lock(func() {
		if got := []int64{f.issued[0].Limits[0].AmountMinor, f.issued[1].Limits[0].AmountMinor, f.issued[2].Limits[0].AmountMinor}; !slices.Equal(got, []int64{2500, 500, 2500}) {
			t.Fatalf("limits of the issued cards: %v", got)
		}
		if !slices.Contains(f.closed, "card-2") {
			t.Fatalf("the spent card was not closed: %v", f.closed)
		}
	})
}
