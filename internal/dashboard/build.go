package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/ledger"
	"github.com/cardwarden/cardwarden/internal/spend"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

// Building the JSON endpoints' answers (data.go) from the store and the agents' live state.

// storedPolicy is what the dashboard needs from the policy the workflow recorded.
type storedPolicy struct {
	Label         string       `json:"label"`
	TeamID        string       `json:"team_id"`
	DailyLimitUSD money.Amount `json:"daily_limit_usd"`
	Currency      string       `json:"currency"`
	Timezone      string       `json:"timezone"`
}

func parsePolicy(raw string) storedPolicy {
	var p storedPolicy
	_ = json.Unmarshal([]byte(raw), &p) // a policy the store cannot parse shows as zeros
	if p.Currency == "" {
		p.Currency = workflows.DefaultCurrency
	}
	return p
}

const dayLayout = time.DateOnly // the ledger's day keys (ledger.Day)

func pct(spent, limit int64) int64 {
	if limit <= 0 {
		return 0
	}
	return spent * 100 / limit
}

func (h *handler) buildFleet(ctx context.Context) (*Fleet, error) {
	agents, err := h.cfg.Store.ListAgents(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]AgentRow, len(agents))
	errs := make([]error, len(agents))
	sem := make(chan struct{}, h.cfg.MaxConcurrentQueries)
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rows[i], _, errs[i] = h.row(ctx, a)
		}()
	}
	wg.Wait()
	f := &Fleet{GeneratedAt: h.cfg.Now().UTC(), PollMS: h.cfg.PollInterval.Milliseconds(), TemporalUI: h.cfg.TemporalUIURL,
		Agents: rows, Totals: Totals{Agents: len(rows), ByStatus: map[string]int{}}}
	for i, r := range rows {
		if errs[i] != nil {
			return nil, fmt.Errorf("agent %s: %w", agents[i].AgentID, errs[i])
		}
		f.Totals.ByStatus[r.Status]++
		if r.Live {
			f.Totals.Live++
		}
		f.Totals.SpentTodayUSD += r.SpentTodayUSD
	}
	return f, nil
}

// row builds one agent's row: from its workflow when it answers in time, from the store
// otherwise. It also returns the live state, when there is one.
func (h *handler) row(ctx context.Context, a store.Agent) (AgentRow, *workflows.StateView, error) {
	p := parsePolicy(a.Policy)
	r := AgentRow{AgentID: a.AgentID, Label: a.Label, Issuer: a.Issuer, TeamID: p.TeamID, Status: a.Status, Currency: p.Currency,
		DailyLimitUSD: p.DailyLimitUSD, WorkflowURL: WorkflowURL(h.cfg.TemporalUIURL, h.cfg.Namespace, a.AgentID)}
	if r.Label == "" {
		r.Label = p.Label
	}
	if sv, ok := h.liveState(ctx, a); ok {
		fromState(&r, sv)
		return r, &sv, nil
	}
	if err := h.fromStore(ctx, &r, p); err != nil {
		return AgentRow{}, nil, err
	}
	return r, nil, nil
}

// liveState queries the workflow with a short timeout. A retired agent's workflow has ended;
// querying it would replay its history for nothing, so the store answers for it.
func (h *handler) liveState(ctx context.Context, a store.Agent) (workflows.StateView, bool) {
	if h.cfg.States == nil || a.Status == string(workflows.StatusRetired) {
		return workflows.StateView{}, false
	}
	qctx, cancel := context.WithTimeout(ctx, h.cfg.StateTimeout)
	defer cancel()
	sv, err := h.cfg.States.State(qctx, a.AgentID)
	if err != nil {
		h.cfg.Logger.DebugContext(ctx, "dashboard: state query failed; showing the store's view", "agent_id", a.AgentID, "error", err)
		return workflows.StateView{}, false
	}
	return sv, true
}

func fromState(r *AgentRow, sv workflows.StateView) {
	r.Live = true
	r.Status = string(sv.Status)
	r.StatusReason = sv.StatusReason
	if sv.Label != "" {
		r.Label = sv.Label
	}
	if sv.Card != nil {
		r.Card = &CardBrief{Last4: sv.Card.Last4, Status: sv.Card.Status, Generation: sv.Card.Generation}
	}
	r.Day = sv.Budget.Day
	if sv.Budget.Currency != "" {
		r.Currency = sv.Budget.Currency
	}
	r.SpentTodayUSD = sv.Budget.SpentTodayUSD
	r.DailyLimitUSD = sv.Budget.DailyLimitUSD
	r.OverspendTodayUSD = sv.Budget.OverspendTodayUSD
	r.ReservedUSD, r.RemainingTodayUSD = sv.Budget.ReservedUSD, sv.Budget.RemainingTodayUSD
	if sv.Policy.AgentID != "" { // the live policy, when the view carries it
		r.TeamID = sv.Policy.TeamID
	}
	r.SpentPct = pct(r.SpentTodayUSD.Minor(), r.DailyLimitUSD.Minor())
	r.Rotations, r.Freezes, r.Revocations = sv.Rotations, sv.Freezes, sv.Revocations
	for _, d := range sv.RecentDeclines {
		if r.LastDecline == nil || !d.At.Before(r.LastDecline.At) {
			r.LastDecline = &Decline{At: d.At, Reason: d.Reason, AmountUSD: d.AmountUSD, Merchant: d.Merchant}
		}
	}
}

func (h *handler) fromStore(ctx context.Context, r *AgentRow, p storedPolicy) error {
	now := h.cfg.Now()
	r.Day = ledger.Day(now, ledger.Location(p.Timezone))
	cards, err := h.cfg.Store.ListCards(ctx, r.AgentID)
	if err != nil {
		return err
	}
	if len(cards) > 0 {
		cur := cards[len(cards)-1]
		for i := len(cards) - 1; i >= 0; i-- {
			if cards[i].Status != string(issuer.CardClosed) {
				cur = cards[i]
				break
			}
		}
		if cur.Status != string(issuer.CardClosed) {
			r.Card = &CardBrief{Last4: cur.Last4, Status: cur.Status, Generation: cur.Generation}
		}
		r.Rotations = len(cards) - 1 // every generation after the first replaced one
	}
	spend, err := h.cfg.Store.SpendSeries(ctx, r.AgentID, r.Day, r.Day)
	if err != nil {
		return err
	}
	for _, d := range spend {
		r.SpentTodayUSD += money.Amount(d.SpentMinor)
		r.OverspendTodayUSD += money.Amount(d.OverspendMinor)
	}
	r.SpentPct = pct(r.SpentTodayUSD.Minor(), r.DailyLimitUSD.Minor())
	r.RemainingTodayUSD = max(0, r.DailyLimitUSD-r.SpentTodayUSD) // the store knows no reservations
	evs, err := h.cfg.Store.AgentEvents(ctx, r.AgentID, now.Add(-30*24*time.Hour), 200)
	if err != nil {
		return err
	}
	for _, e := range evs { // newest first
		if !e.Approved && e.Kind == string(cardwarden.KindAuthorization) {
			r.LastDecline = &Decline{At: e.OccurredAt.UTC(), Reason: e.DeclineReason, AmountUSD: money.Amount(e.AmountMinor), Merchant: e.Merchant}
			break
		}
	}
	return nil
}

// maxLedgerRows bounds the ledger rows one agent page reads.
const maxLedgerRows = 5000

func (h *handler) buildAgent(ctx context.Context, id string) (*AgentDetail, error) {
	a, err := h.cfg.Store.GetAgent(ctx, id)
	if err != nil {
		return nil, err
	}
	row, sv, err := h.row(ctx, a)
	if err != nil {
		return nil, err
	}
	p := parsePolicy(a.Policy)
	tz := p.Timezone
	if sv != nil && sv.Timezone != "" {
		tz = sv.Timezone
	}
	loc := ledger.Location(tz) // the zone the ledger counts the agent's days in
	now := h.cfg.Now().In(loc)
	d := &AgentDetail{Agent: row, State: sv, Timezone: loc.String()}

	today := now.Format(dayLayout)
	from := now.AddDate(0, 0, -29).Format(dayLayout)
	spend, err := h.cfg.Store.SpendSeries(ctx, id, from, today)
	if err != nil {
		return nil, err
	}
	byDay := map[string]store.DailySpend{}
	for _, s := range spend {
		byDay[s.Day] = s
	}
	for k := 29; k >= 0; k-- {
		day := now.AddDate(0, 0, -k).Format(dayLayout)
		s := byDay[day]
		d.Daily = append(d.Daily, DayPoint{Day: day, SpentUSD: money.Amount(s.SpentMinor), OverspendUSD: money.Amount(s.OverspendMinor), Declines: s.Declines})
	}

	// One read of the ledger serves the hourly chart (today, with yesterday to know the
	// authorizations today's captures settle), the timeline (7 days) and the events table.
	startToday := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	weekAgo := now.Add(-7 * 24 * time.Hour)
	since := startToday.AddDate(0, 0, -1)
	if weekAgo.Before(since) {
		since = weekAgo
	}
	evs, err := h.cfg.Store.AgentEvents(ctx, id, since, maxLedgerRows)
	if err != nil {
		return nil, err
	}
	slices.Reverse(evs) // oldest first
	d.Hourly, d.NowHour = hourly(evs, loc, startToday), now.Hour()
	for i := len(evs) - 1; i >= 0 && len(d.Events) < 50; i-- {
		e := evs[i]
		d.Events = append(d.Events, EventRow{At: e.OccurredAt.UTC(), Kind: e.Kind, Approved: e.Approved, Reason: e.DeclineReason,
			AmountUSD: money.Amount(e.AmountMinor), Merchant: e.Merchant, CardID: e.IssuerCardID})
	}

	d.TimelineFrom, d.TimelineTo = weekAgo.UTC(), now.UTC()
	for _, e := range evs {
		if !e.Approved && e.Kind == string(cardwarden.KindAuthorization) && !e.OccurredAt.Before(weekAgo) {
			amt := money.Amount(e.AmountMinor)
			d.Timeline = append(d.Timeline, Mark{At: e.OccurredAt.UTC(), Type: MarkDecline, Reason: e.DeclineReason, AmountUSD: &amt, Merchant: e.Merchant})
		}
	}
	audit, err := h.cfg.Store.ListAudit(ctx, id, 500)
	if err != nil {
		return nil, err
	}
	for _, e := range audit {
		if t := auditMark(e.Action); t != "" && !e.At.Before(weekAgo) {
			d.Timeline = append(d.Timeline, Mark{At: e.At.UTC(), Type: t, Reason: e.Detail, Actor: e.Actor})
		}
	}
	alerts, err := h.cfg.Store.ListAlerts(ctx, id, 100)
	if err != nil {
		return nil, err
	}
	for _, al := range alerts {
		ar := AlertRow{Kind: al.Kind, Period: al.Period, Message: al.Message, Status: al.Status, Attempts: al.Attempts, CreatedAt: al.CreatedAt.UTC()}
		if al.SentAt.Valid {
			t := al.SentAt.Time.UTC()
			ar.SentAt = &t
		}
		d.Alerts = append(d.Alerts, ar)
		// The audit entry is best effort; the alert marks a freeze or revocation the audit
		// log missed.
		if t := alertMark(al.Kind); t != "" && !al.CreatedAt.Before(weekAgo) && !hasMarkNear(d.Timeline, t, al.CreatedAt, time.Minute) {
			d.Timeline = append(d.Timeline, Mark{At: al.CreatedAt.UTC(), Type: t, Reason: al.Message, Actor: "workflow"})
		}
	}
	slices.SortStableFunc(d.Timeline, func(a, b Mark) int { return a.At.Compare(b.At) })

	cards, err := h.cfg.Store.ListCards(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, c := range cards {
		cr := CardRow{Generation: c.Generation, Last4: c.Last4, Status: c.Status, Issuer: c.Issuer, IssuerCardID: c.IssuerCardID,
			IssuedAt: c.CreatedAt.UTC(), DailyLimitUSD: money.Amount(c.DailyLimitMinor)}
		if c.ClosedAt.Valid {
			t := c.ClosedAt.Time.UTC()
			cr.ClosedAt = &t
		}
		d.Cards = append(d.Cards, cr)
	}
	if d.Decisions, err = h.decisions(ctx, []string{id}, "", sv); err != nil {
		return nil, err
	}
	// Lists are [] when empty, never null: the page reads their length.
	d.Timeline, d.Cards, d.Alerts, d.Events = nonNil(d.Timeline), nonNil(d.Cards), nonNil(d.Alerts), nonNil(d.Events)
	d.Daily, d.Hourly = nonNil(d.Daily), nonNil(d.Hourly)
	return d, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// hourly buckets today's spend by local hour: each event adds what it changed in the day's
// spend under package spend's rules (the workflow's and the ledger's), so captures and
// reversals count as they do in the budget and a refund is no negative spend.
func hourly(evs []store.LedgerEvent, loc *time.Location, startToday time.Time) []HourPoint {
	out := make([]HourPoint, 24)
	for i := range out {
		out[i].Hour = i
	}
	day := spend.Window{Start: startToday, End: startToday.AddDate(0, 0, 1)}
	var b spend.Book
	for _, e := range evs {
		d := b.Apply(e.IssuerEvent(), day, day)
		at := e.OccurredAt.In(loc)
		if at.Before(startToday) || at.Sub(startToday) >= 25*time.Hour {
			continue
		}
		hr := at.Hour()
		out[hr].SpentUSD += money.Amount(d.Period.Spent)
		if !e.Approved && e.Kind == string(cardwarden.KindAuthorization) {
			out[hr].Declines++
		}
	}
	return out
}

func auditMark(action string) string {
	switch action {
	case "auto-freeze", "freeze":
		return MarkFreeze
	case "auto-revoke", "revoke":
		return MarkRevoke
	case "unfreeze":
		return MarkUnfreeze
	case "rotate":
		return MarkRotate
	case "card-issued":
		return MarkIssue
	case "retire":
		return MarkRetire
	}
	return ""
}

func alertMark(kind string) string {
	switch {
	case kind == workflows.AlertFrozen:
		return MarkFreeze
	case kind == workflows.AlertRevoked, strings.HasPrefix(kind, workflows.AlertRevoked+"-"):
		return MarkRevoke
	}
	return ""
}

func hasMarkNear(ms []Mark, typ string, at time.Time, within time.Duration) bool {
	for _, m := range ms {
		if m.Type == typ && m.At.Sub(at).Abs() <= within {
			return true
		}
	}
	return false
}
