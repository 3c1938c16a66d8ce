package workflows

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/outbound"
	"github.com/cardwarden/cardwarden/money"
)

// Policy is an agent's policy: the AgentCard workflow's input (docs/policy.md).
// Only agent_id and daily_limit_usd are required; Normalize fills in every default. Money is
// exact minor units inside and decimal dollars in JSON.
type Policy struct {
	AgentID         string        `json:"agent_id"`
	Label           string        `json:"label,omitempty"`
	Issuer          string        `json:"issuer,omitempty"`
	Currency        string        `json:"currency,omitempty"`
	DailyLimitUSD   money.Amount  `json:"daily_limit_usd"`
	MonthlyLimitUSD *money.Amount `json:"monthly_limit_usd,omitempty"`
	Timezone        string        `json:"timezone,omitempty"`
	ResetCron       string        `json:"reset_cron,omitempty"`
	RotateCron      string        `json:"rotate_cron,omitempty"`
	RotationGrace   Duration      `json:"rotation_grace,omitzero"`
	CardTTL         Duration      `json:"card_ttl,omitzero"`
	// ResetSpread is the window after each reset instant over which agents sharing it wake to
	// apply it (each at a point fixed by its id); absent or 0: 10 s. README, Lifecycle, step 2.
	ResetSpread Duration      `json:"reset_spread,omitzero"`
	RetireAt    *time.Time    `json:"retire_at,omitempty"`
	Anomaly     AnomalyPolicy `json:"anomaly,omitzero"`
	Alerts      AlertPolicy   `json:"alerts,omitzero"`
	// CredentialsPushURL, when set, receives every newly issued card's credentials as a signed
	// JSON POST (HMAC keyed by the SHA-256 of the agent's own token), so an agent need not
	// poll for a rotated card.
	CredentialsPushURL string `json:"credentials_push_url,omitempty"`

	// Rules decided on each purchase where the issuer asks cardwarden in real time (README,
	// "Deciding each purchase"): merchants, the largest single purchase, how fast.
	MerchantRules     MerchantRules `json:"merchant_rules,omitzero"`
	Velocity          Velocity      `json:"velocity,omitzero"`
	MaxPerPurchaseUSD *money.Amount `json:"max_per_purchase_usd,omitempty"`
	// TeamID names the team (workflow team/<id>) whose budget the agent shares.
	TeamID string `json:"team_id,omitempty"`
	// OnDecisionTimeout is what the decision endpoint answers when the agent's workflow
	// cannot decide in time: "decline" (the default) or "approve" (the card's limit decides).
	OnDecisionTimeout string `json:"on_decision_timeout,omitempty"`
}

// AnomalyPolicy configures the decline-burst detector.
type AnomalyPolicy struct {
	// Window is the sliding window declines are counted in, by the events' own time.
	Window Duration `json:"window,omitzero"`
	// MaxDeclines is the weighted count of declines within Window that freezes the card.
	MaxDeclines int `json:"max_declines,omitzero"`
	// HardReasons revoke (close) the card on the first decline with that reason.
	HardReasons []string `json:"hard_reasons,omitzero"`
	// RevokeAfterFreezes: the Nth automatic freeze of the same card revokes it instead.
	RevokeAfterFreezes int `json:"revoke_after_freezes,omitzero"`
	// ReasonWeights says how much a decline of each reason counts (default 1). Declines the
	// workflow caused itself (card_paused, card_closed) count 0 unless set.
	ReasonWeights map[string]int `json:"reason_weights,omitempty"`
}

// AlertPolicy says where alerts go and when spend alerts fire.
type AlertPolicy struct {
	// WebhookURL receives alerts as JSON POSTs. Without it alerts are only recorded.
	WebhookURL string `json:"webhook_url,omitempty"`
	// ThresholdsPct are the percentages of the daily limit whose crossing alerts, once a day.
	ThresholdsPct []int `json:"thresholds_pct,omitzero"`
}

// Defaults (docs/policy.md).
const (
	DefaultIssuer             = "sim"
	DefaultCurrency           = "USD"
	DefaultTimezone           = "UTC"
	DefaultResetCron          = "0 0 * * *"
	DefaultRotateCron         = "0 3 * * MON"
	DefaultRotationGrace      = time.Hour
	DefaultCardTTL            = 720 * time.Hour
	DefaultAnomalyWindow      = 5 * time.Minute
	DefaultMaxDeclines        = 5
	DefaultRevokeAfterFreezes = 3
	// RotateOff in rotate_cron disables scheduled rotation (card_ttl still rotates).
	RotateOff = "off"
)

// DefaultHardReasons revoke a card on the first such decline.
var DefaultHardReasons = []string{string(cardwarden.ReasonSuspectedFraud)}

// DefaultThresholdsPct alert at 80% and 100% of the daily limit.
var DefaultThresholdsPct = []int{80, 100}

// defaultReasonWeights keeps the declines cardwarden causes itself (by pausing or closing a
// card) from feeding the burst that caused them.
var defaultReasonWeights = map[string]int{
	string(cardwarden.ReasonCardPaused): 0,
	string(cardwarden.ReasonCardClosed): 0,
}

var knownReasons = []string{
	string(cardwarden.ReasonSpendingLimit), string(cardwarden.ReasonCardPaused), string(cardwarden.ReasonCardClosed),
	string(cardwarden.ReasonCardExpired), string(cardwarden.ReasonMerchantBlocked), string(cardwarden.ReasonSuspectedFraud),
	string(cardwarden.ReasonOther),
}

// Upper bounds that catch typos (a 30-year grace period) rather than encode policy.
const (
	maxGrace        = 7 * 24 * time.Hour
	maxSpread       = time.Hour
	minCardTTL      = time.Hour
	maxCardTTL      = 5 * 366 * 24 * time.Hour
	maxWindow       = 24 * time.Hour
	maxDeclinesCap  = 10_000
	maxWeight       = 1_000
	maxFreezesCap   = 100
	maxThresholdPct = 1_000
)

// ParsePolicy decodes a policy from JSON, rejecting unknown fields, fills in defaults and
// validates it. Errors name the field: `policy.timezone: unknown time zone "Mars/Base"`. Its
// outbound URLs (credentials_push_url, alerts.webhook_url) must also pass the production
// outbound rules (https, no internal address): ParsePolicyWith takes the operator's rules.
func ParsePolicy(b []byte) (Policy, error) {
	return ParsePolicyWith(b, outbound.Rules{})
}

// ParsePolicyWith is ParsePolicy with the process's outbound rules (`cardwarden dev` allows
// plain http and loopback; operators may allow-list internal targets).
func ParsePolicyWith(b []byte, rules outbound.Rules) (Policy, error) {
	p, state, err := decodeInput(b)
	if err != nil {
		return Policy{}, err
	}
	if state != nil {
		return Policy{}, FieldErrors{{Field: "policy.state", Msg: "unknown field"}}
	}
	np, err := p.Normalize()
	if err != nil {
		return Policy{}, err
	}
	if err := np.CheckOutbound(rules); err != nil {
		return Policy{}, err
	}
	return np, nil
}

// CheckOutbound checks the policy's outbound URLs against the process's outbound rules, with
// errors naming the field. Normalize checks only what no rules allow (it runs inside the
// workflow, where the operator's configuration must not matter); the edges (HTTP API, CLI,
// starter) call this before starting an agent, and the hardened client checks again, on the
// resolved address, when it sends.
func (p Policy) CheckOutbound(rules outbound.Rules) error {
	var errs FieldErrors
	for _, f := range []struct{ field, url string }{
		{"policy.credentials_push_url", p.CredentialsPushURL},
		{"policy.alerts.webhook_url", p.Alerts.WebhookURL},
	} {
		if f.url == "" {
			continue
		}
		if err := rules.CheckURL(f.url); err != nil {
			errs.add(f.field, "%s", urlProblem(err))
		}
	}
	return errs.err()
}

// urlProblem is an outbound refusal without its prefix, for a field error.
func urlProblem(err error) string {
	var oe *outbound.Error
	if errors.As(err, &oe) {
		return oe.Reason
	}
	return err.Error()
}

// Normalize fills in defaults and validates the policy, returning the complete policy the
// workflow runs with. Normalizing a normalized policy changes nothing.
func (p Policy) Normalize() (Policy, error) {
	var errs FieldErrors
	if p.AgentID == "" {
		errs.add("policy.agent_id", "required")
	} else if err := CheckAgentID(p.AgentID); err != nil {
		errs.add("policy.agent_id", "%s", err.Error())
	}
	if len(p.Label) > 200 {
		errs.add("policy.label", "longer than 200 characters")
	}
	p.Issuer = orDefault(p.Issuer, DefaultIssuer)
	if !ValidIssuerName(p.Issuer) {
		errs.add("policy.issuer", "%q is not an issuer name", p.Issuer)
	}
	p.Currency = orDefault(p.Currency, DefaultCurrency)
	if p.Currency != "USD" {
		errs.add("policy.currency", "%q is not supported (only USD)", p.Currency)
	}
	if p.DailyLimitUSD <= 0 {
		errs.add("policy.daily_limit_usd", "must be greater than 0, got %s", p.DailyLimitUSD)
	}
	if p.MonthlyLimitUSD != nil && *p.MonthlyLimitUSD <= 0 {
		errs.add("policy.monthly_limit_usd", "must be greater than 0, got %s", *p.MonthlyLimitUSD)
	}
	p.Timezone = orDefault(p.Timezone, DefaultTimezone)
	if _, err := LoadLocation(p.Timezone); err != nil {
		errs.add("policy.timezone", "%s", err.Error())
	}
	p.ResetCron = orDefault(p.ResetCron, DefaultResetCron)
	if _, err := ParseCron(p.ResetCron); err != nil {
		errs.add("policy.reset_cron", "%s", err.Error())
	}
	p.RotateCron = orDefault(p.RotateCron, DefaultRotateCron)
	if p.RotateCron != RotateOff {
		if _, err := ParseCron(p.RotateCron); err != nil {
			errs.add("policy.rotate_cron", "%s (or %q to rotate only at card_ttl)", err.Error(), RotateOff)
		}
	}
	if p.RotationGrace == 0 {
		p.RotationGrace = Duration(DefaultRotationGrace)
	}
	if p.RotationGrace < 0 || p.RotationGrace.D() > maxGrace {
		errs.add("policy.rotation_grace", "must be between 0s and %s, got %s", Duration(maxGrace), p.RotationGrace)
	}
	if p.CardTTL == 0 {
		p.CardTTL = Duration(DefaultCardTTL)
	}
	if p.CardTTL.D() < minCardTTL || p.CardTTL.D() > maxCardTTL {
		errs.add("policy.card_ttl", "must be between %s and %s, got %s", Duration(minCardTTL), Duration(maxCardTTL), p.CardTTL)
	} else if p.RotationGrace.D() >= p.CardTTL.D() {
		errs.add("policy.rotation_grace", "must be shorter than card_ttl (%s)", p.CardTTL)
	}
	if p.ResetSpread < 0 || p.ResetSpread.D() > maxSpread {
		errs.add("policy.reset_spread", "must be between 0s and %s, got %s", Duration(maxSpread), p.ResetSpread)
	}
	if p.RetireAt != nil {
		t := p.RetireAt.UTC()
		p.RetireAt = &t
	}
	p.Anomaly = p.Anomaly.normalize(&errs)
	p.Alerts = p.Alerts.normalize(&errs)
	p.MerchantRules = p.MerchantRules.normalize(&errs)
	p.Velocity = p.Velocity.normalize(&errs)
	if m := p.MaxPerPurchaseUSD; m != nil && (*m <= 0 || m.Minor() > money.MaxMinor) {
		errs.add("policy.max_per_purchase_usd", "must be greater than 0, got %s", *m)
	}
	if p.TeamID != "" {
		if err := CheckAgentID(p.TeamID); err != nil {
			errs.add("policy.team_id", "%s", err.Error())
		}
	}
	p.OnDecisionTimeout = orDefault(p.OnDecisionTimeout, OnTimeoutDecline)
	if p.OnDecisionTimeout != OnTimeoutDecline && p.OnDecisionTimeout != OnTimeoutApprove {
		errs.add("policy.on_decision_timeout", "%q: want %q or %q", p.OnDecisionTimeout, OnTimeoutDecline, OnTimeoutApprove)
	}
	if p.CredentialsPushURL != "" {
		checkURLSyntax(&errs, "policy.credentials_push_url", p.CredentialsPushURL)
	}
	if err := errs.err(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

func (a AnomalyPolicy) normalize(errs *FieldErrors) AnomalyPolicy {
	if a.Window == 0 {
		a.Window = Duration(DefaultAnomalyWindow)
	}
	if a.Window < 0 || a.Window.D() > maxWindow {
		errs.add("policy.anomaly.window", "must be between 1s and %s, got %s", Duration(maxWindow), a.Window)
	}
	if a.MaxDeclines == 0 {
		a.MaxDeclines = DefaultMaxDeclines
	}
	if a.MaxDeclines < 1 || a.MaxDeclines > maxDeclinesCap {
		errs.add("policy.anomaly.max_declines", "must be between 1 and %d, got %d", maxDeclinesCap, a.MaxDeclines)
	}
	if a.HardReasons == nil {
		a.HardReasons = slices.Clone(DefaultHardReasons)
	}
	a.HardReasons = normalizeHardReasons(a.HardReasons, errs)
	if a.RevokeAfterFreezes == 0 {
		a.RevokeAfterFreezes = DefaultRevokeAfterFreezes
	}
	if a.RevokeAfterFreezes < 1 || a.RevokeAfterFreezes > maxFreezesCap {
		errs.add("policy.anomaly.revoke_after_freezes", "must be between 1 and %d, got %d", maxFreezesCap, a.RevokeAfterFreezes)
	}
	a.ReasonWeights = normalizeWeights(a.ReasonWeights, errs)
	return a
}

func (a AlertPolicy) normalize(errs *FieldErrors) AlertPolicy {
	if a.WebhookURL != "" {
		checkURLSyntax(errs, "policy.alerts.webhook_url", a.WebhookURL)
	}
	if a.ThresholdsPct == nil {
		a.ThresholdsPct = slices.Clone(DefaultThresholdsPct)
	}
	th := make([]int, 0, len(a.ThresholdsPct))
	for i, pct := range a.ThresholdsPct {
		if pct < 1 || pct > maxThresholdPct {
			errs.add(fmt.Sprintf("policy.alerts.thresholds_pct[%d]", i), "must be between 1 and %d, got %d", maxThresholdPct, pct)
		} else if !slices.Contains(th, pct) {
			th = append(th, pct)
		}
	}
	slices.Sort(th)
	a.ThresholdsPct = th
	return a
}

// MonthlyLimitMinor is the monthly cap in minor units, 0 when there is none.
func (p Policy) MonthlyLimitMinor() int64 {
	if p.MonthlyLimitUSD == nil {
		return 0
	}
	return p.MonthlyLimitUSD.Minor()
}

// Location is the agent's time zone. The policy must be normalized.
func (p Policy) Location() *time.Location { return zone(p.Timezone) }

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

// checkURLSyntax adds a field error for an outbound URL that no outbound rules could allow:
// not absolute http(s), with user:password@ (which would be copied into the audit log), too
// long, or a literal link-local (cloud metadata), multicast or unspecified address. The URL is
// quoted only when it is plainly not one, so a credential in it is not echoed.
func checkURLSyntax(errs *FieldErrors, field, raw string) {
	err := outbound.CheckURLSyntax(raw)
	if err == nil {
		return
	}
	u, perr := url.Parse(raw)
	if perr != nil || u.User != nil || len(raw) > 200 {
		errs.add(field, "%s", urlProblem(err))
		return
	}
	if msg := urlProblem(err); msg != "not an absolute http(s) URL" {
		errs.add(field, "%q: %s", raw, msg)
		return
	}
	errs.add(field, "%q is not an absolute http(s) URL", raw)
}
