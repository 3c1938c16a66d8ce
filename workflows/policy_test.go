package workflows

import (
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden/money"
)

func TestParsePolicyMinimalGetsDefaults(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"agent_id":"demo","daily_limit_usd":25}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.AgentID != "demo" || p.DailyLimitUSD != money.MustParse("25") {
		t.Fatalf("got %+v", p)
	}
	checks := map[string][2]string{
		"issuer":         {p.Issuer, "sim"},
		"currency":       {p.Currency, "USD"},
		"timezone":       {p.Timezone, "UTC"},
		"reset_cron":     {p.ResetCron, "0 0 * * *"},
		"rotate_cron":    {p.RotateCron, "0 3 * * MON"},
		"rotation_grace": {p.RotationGrace.String(), "1h"},
		"card_ttl":       {p.CardTTL.String(), "720h"},
		"window":         {p.Anomaly.Window.String(), "5m"},
		"hard_reasons":   {strings.Join(p.Anomaly.HardReasons, ","), "suspected_fraud"},
	}
	for field, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", field, c[0], c[1])
		}
	}
	if p.Anomaly.MaxDeclines != 5 || p.Anomaly.RevokeAfterFreezes != 3 {
		t.Errorf("anomaly defaults: %+v", p.Anomaly)
	}
	if p.Anomaly.Weight("card_paused") != 0 || p.Anomaly.Weight("spending_limit") != 1 {
		t.Errorf("weights: %v", p.Anomaly.ReasonWeights)
	}
	if len(p.Alerts.ThresholdsPct) != 2 || p.Alerts.ThresholdsPct[0] != 80 || p.Alerts.ThresholdsPct[1] != 100 {
		t.Errorf("thresholds: %v", p.Alerts.ThresholdsPct)
	}
	if p.MonthlyLimitUSD != nil || p.RetireAt != nil {
		t.Errorf("optional fields set: %+v", p)
	}
}

func TestParsePolicyFull(t *testing.T) {
	p, err := ParsePolicy([]byte(`{
		"agent_id": "support-bot", "label": "Support bot", "issuer": "aipaymentproxy", "currency": "USD",
		"daily_limit_usd": "12.50", "monthly_limit_usd": 300, "timezone": "America/New_York",
		"reset_cron": "30 6 * * *", "rotate_cron": "off", "rotation_grace": "30m", "card_ttl": "7d",
		"reset_spread": "45s", "retire_at": "2027-06-30T17:00:00-04:00",
		"anomaly": {"window": "10m", "max_declines": 3, "hard_reasons": [], "revoke_after_freezes": 1,
		            "reason_weights": {"merchant_blocked": 2, "card_paused": 1}},
		"alerts": {"webhook_url": "https://hooks.example.com/cw", "thresholds_pct": [100, 50, 50]}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.DailyLimitUSD.Minor() != 1250 || p.MonthlyLimitMinor() != 30000 {
		t.Errorf("money: %s %s", p.DailyLimitUSD, p.MonthlyLimitUSD)
	}
	if p.CardTTL.D() != 7*24*time.Hour || p.RotationGrace.D() != 30*time.Minute || p.ResetSpread.D() != 45*time.Second {
		t.Errorf("durations: %s %s %s", p.CardTTL, p.RotationGrace, p.ResetSpread)
	}
	if !p.RetireAt.Equal(time.Date(2027, 6, 30, 21, 0, 0, 0, time.UTC)) || p.RetireAt.Location() != time.UTC {
		t.Errorf("retire_at: %v", p.RetireAt)
	}
	if len(p.Anomaly.HardReasons) != 0 {
		t.Errorf("explicit empty hard_reasons must stay empty: %v", p.Anomaly.HardReasons)
	}
	if p.Anomaly.Weight("merchant_blocked") != 2 || p.Anomaly.Weight("card_paused") != 1 || p.Anomaly.Weight("card_closed") != 0 {
		t.Errorf("weights: %v", p.Anomaly.ReasonWeights)
	}
	if got := p.Alerts.ThresholdsPct; len(got) != 2 || got[0] != 50 || got[1] != 100 {
		t.Errorf("thresholds sorted and unique: %v", got)
	}
	// The normalized policy round-trips through JSON (continue-as-new carries it that way).
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParsePolicy(b)
	if err != nil {
		t.Fatalf("reparse %s: %v", b, err)
	}
	b2, _ := json.Marshal(again)
	if string(b) != string(b2) {
		t.Fatalf("not idempotent:\n%s\n%s", b, b2)
	}
}

func TestParsePolicyErrorsNameTheField(t *testing.T) {
	cases := map[string]string{
		`{"agent_id":"demo","daily_limit_usd":25,"timezone":"Mars/Base"}`: `policy.timezone: unknown time zone "Mars/Base"`,
		`{"agent_id":"demo"}`:    `policy.daily_limit_usd: required`,
		`{"daily_limit_usd":25}`: `policy.agent_id: required`,
		`{"agent_id":"demo","daily_limit_usd":25,"colour":"red"}`:                            `policy.colour: unknown field`,
		`{"agent_id":"demo","daily_limit_usd":25,"anomaly":{"windw":"1m"}}`:                  `policy.anomaly.windw: unknown field`,
		`{"agent_id":"demo","daily_limit_usd":25,"alerts":{"thresholds":[1]}}`:               `policy.alerts.thresholds: unknown field`,
		`{"agent_id":"demo","daily_limit_usd":12.345}`:                                       `policy.daily_limit_usd: "12.345": more than 2 decimal places`,
		`{"agent_id":"demo","daily_limit_usd":-5}`:                                           `policy.daily_limit_usd: must be greater than 0`,
		`{"agent_id":"demo","daily_limit_usd":"NaN"}`:                                        `policy.daily_limit_usd: "NaN": not a decimal amount`,
		`{"agent_id":"demo","daily_limit_usd":1e30}`:                                         `policy.daily_limit_usd: "1e30": amount out of range`,
		`{"agent_id":"demo","daily_limit_usd":25,"monthly_limit_usd":0}`:                     `policy.monthly_limit_usd: must be greater than 0`,
		`{"agent_id":"demo","daily_limit_usd":25,"reset_cron":"61 * * * *"}`:                 `policy.reset_cron: invalid cron spec`,
		`{"agent_id":"demo","daily_limit_usd":25,"reset_cron":"0 0 30 2 *"}`:                 `policy.reset_cron: cron spec "0 0 30 2 *" never fires`,
		`{"agent_id":"demo","daily_limit_usd":25,"reset_cron":"CRON_TZ=UTC 0 0 * * *"}`:      `policy.reset_cron: time zone prefixes are not allowed`,
		`{"agent_id":"demo","daily_limit_usd":25,"rotate_cron":"weekly"}`:                    `policy.rotate_cron: invalid cron spec`,
		`{"agent_id":"demo","daily_limit_usd":25,"rotation_grace":"soon"}`:                   `policy.rotation_grace: invalid duration "soon"`,
		`{"agent_id":"demo","daily_limit_usd":25,"rotation_grace":"0s"}`:                     `policy.rotation_grace: must be greater than 0`,
		`{"agent_id":"demo","daily_limit_usd":25,"card_ttl":"10m"}`:                          `policy.card_ttl: must be between 1h and`,
		`{"agent_id":"demo","daily_limit_usd":25,"card_ttl":"2h","rotation_grace":"3h"}`:     `policy.rotation_grace: must be shorter than card_ttl`,
		`{"agent_id":"demo","daily_limit_usd":25,"retire_at":"tomorrow"}`:                    `policy.retire_at: "tomorrow" is not an RFC 3339 time`,
		`{"agent_id":"demo","daily_limit_usd":25,"reset_spread":"2h"}`:                       `policy.reset_spread: must be between 0s and 1h`,
		`{"agent_id":"demo","daily_limit_usd":25,"reset_spread":"soon"}`:                     `policy.reset_spread: invalid duration "soon"`,
		`{"agent_id":"demo","daily_limit_usd":25,"currency":"EUR"}`:                          `policy.currency: "EUR" is not supported`,
		`{"agent_id":"demo","daily_limit_usd":25,"issuer":"Not An Issuer"}`:                  `policy.issuer: "Not An Issuer" is not an issuer name`,
		`{"agent_id":"de mo","daily_limit_usd":25}`:                                          `policy.agent_id: "de mo" must be`,
		`{"agent_id":5,"daily_limit_usd":25}`:                                                `policy.agent_id: must be a string, got number`,
		`{"agent_id":"demo","daily_limit_usd":25,"anomaly":{"max_declines":0}}`:              `policy.anomaly.max_declines: must be at least 1`,
		`{"agent_id":"demo","daily_limit_usd":25,"anomaly":{"hard_reasons":["fraud"]}}`:      `policy.anomaly.hard_reasons[0]: unknown decline reason "fraud"`,
		`{"agent_id":"demo","daily_limit_usd":25,"anomaly":{"reason_weights":{"other":-1}}}`: `policy.anomaly.reason_weights.other: must be between 0 and`,
		`{"agent_id":"demo","daily_limit_usd":25,"alerts":{"webhook_url":"ftp://x"}}`:        `policy.alerts.webhook_url: "ftp://x" is not an absolute http(s) URL`,
		`{"agent_id":"demo","daily_limit_usd":25,"alerts":{"thresholds_pct":[0]}}`:           `policy.alerts.thresholds_pct[0]: must be between 1 and`,
		`{"agent_id":"demo","daily_limit_usd":25,"state":{}}`:                                `policy.state: unknown field`,
		`[1,2]`:               `policy: must be a JSON object`,
		`{"agent_id":"demo",`: `policy: `,
		``:                    `policy: empty input`,
		`{"agent_id":"demo","daily_limit_usd":25} {}`:                        `policy: unexpected data after the JSON object`,
		`{"agent_id":"demo","daily_limit_usd":25}}`:                          `policy: unexpected data after the JSON object`,
		`{"Agent_id":"demo","daily_limit_usd":25}`:                           `policy.Agent_id: unknown field`,
		`{"agent_id":"demo","daily_limit_usd":25,"anomaly":{"Window":"1m"}}`: `policy.anomaly.Window: unknown field`,
	}
	for in, want := range cases {
		_, err := ParsePolicy([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePolicy(%s)\n  error: %v\n  want:  %s", in, err, want)
		}
	}
}

func TestParsePolicyReportsEveryProblem(t *testing.T) {
	_, err := ParsePolicy([]byte(`{"agent_id":"demo","daily_limit_usd":0,"timezone":"Nowhere","card_ttl":"1m"}`))
	for _, want := range []string{"policy.daily_limit_usd", "policy.timezone", "policy.card_ttl"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

func TestInputDecodingNeverFails(t *testing.T) {
	var in Input
	if err := json.Unmarshal([]byte(`{"agent_id":"demo","daily_limit_usd":25,"bogus":1}`), &in); err != nil {
		t.Fatalf("Input.UnmarshalJSON must not fail (it would fail workflow tasks forever): %v", err)
	}
	if in.parseErr == nil || !strings.Contains(in.parseErr.Error(), "policy.bogus: unknown field") {
		t.Fatalf("parseErr = %v", in.parseErr)
	}
	st := &State{Status: StatusFrozen, Generation: 7}
	b, err := json.Marshal(Input{Policy: Policy{AgentID: "demo", DailyLimitUSD: 2500}, State: st})
	if err != nil {
		t.Fatal(err)
	}
	var back Input
	if err := json.Unmarshal(b, &back); err != nil || back.parseErr != nil {
		t.Fatalf("round trip: %v %v (%s)", err, back.parseErr, b)
	}
	if back.State == nil || back.State.Generation != 7 || back.State.Status != StatusFrozen || back.AgentID != "demo" {
		t.Fatalf("round trip lost data: %s", b)
	}
}

func TestDurationFormats(t *testing.T) {
	for in, want := range map[string]time.Duration{"1h": time.Hour, "90m": 90 * time.Minute, "30d": 720 * time.Hour, "1h30m": 90 * time.Minute} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "1.5d", "-1d", "soon"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q): want error", bad)
		}
	}
	for d, want := range map[time.Duration]string{time.Hour: "1h", 720 * time.Hour: "720h", 90 * time.Minute: "1h30m", 45 * time.Second: "45s", 5 * time.Minute: "5m"} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
	}
}

func TestRequestsValidate(t *testing.T) {
	var b BudgetRequest
	for in, want := range map[string]string{
		`{}`:                          "nothing to change",
		`{"daily_limit_usd":-1}`:      "request.daily_limit_usd: must be greater than 0",
		`{"daily_limit_usd":"1.234"}`: "request.daily_limit_usd: \"1.234\": more than 2 decimal places",
		`{"monthly_limit_usd":10,"clear_monthly_limit":true}`: "cannot be combined",
		`{"daily":5}`: "request.daily: unknown field",
	} {
		if err := json.Unmarshal([]byte(in), &b); err != nil {
			t.Fatal(err)
		}
		if err := b.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
	if err := json.Unmarshal([]byte(`{"daily_limit_usd":40,"monthly_limit_usd":"600.00"}`), &b); err != nil || b.Validate() != nil {
		t.Fatalf("valid budget rejected: %v %v", err, b.Validate())
	}
	if b.DailyLimitUSD.Minor() != 4000 || b.MonthlyLimitUSD.Minor() != 60000 {
		t.Fatalf("budget: %+v", b)
	}
	var r ReasonRequest
	if err := json.Unmarshal([]byte(`{"reason":"x","why":"y"}`), &r); err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "request.why: unknown field") {
		t.Fatalf("reason request: %v", err)
	}
}

// A normalized policy normalized again (what every continued run and every stored policy
// does) keeps its lists and maps instead of copying them: an idle agent holds its policy for
// its whole life. A list or map with a problem is still reported and cleaned.
func TestNormalizeKeepsCleanListsAndMaps(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"agent_id":"demo","daily_limit_usd":25,
		"anomaly":{"hard_reasons":["suspected_fraud","card_expired"],"reason_weights":{"merchant_blocked":2}}}`))
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	if reflect.ValueOf(again.Anomaly.ReasonWeights).UnsafePointer() != reflect.ValueOf(p.Anomaly.ReasonWeights).UnsafePointer() {
		t.Error("a complete, valid reason_weights map was copied")
	}
	if &again.Anomaly.HardReasons[0] != &p.Anomaly.HardReasons[0] {
		t.Error("a clean hard_reasons list was copied")
	}
	want := map[string]int{"merchant_blocked": 2, "card_paused": 0, "card_closed": 0}
	if !maps.Equal(again.Anomaly.ReasonWeights, want) {
		t.Errorf("weights = %v, want %v", again.Anomaly.ReasonWeights, want)
	}

	dup := p
	dup.Anomaly.HardReasons = []string{"card_expired", "card_expired", "suspected_fraud"}
	dup.Anomaly.ReasonWeights = map[string]int{"other": 3}
	n, err := dup.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(n.Anomaly.HardReasons, ","); got != "card_expired,suspected_fraud" {
		t.Errorf("hard_reasons = %s, want the duplicate dropped", got)
	}
	if want := map[string]int{"other": 3, "card_paused": 0, "card_closed": 0}; !maps.Equal(n.Anomaly.ReasonWeights, want) {
		t.Errorf("weights = %v, want the defaults filled in: %v", n.Anomaly.ReasonWeights, want)
	}
	if len(dup.Anomaly.ReasonWeights) != 1 {
		t.Errorf("the given map was changed: %v", dup.Anomaly.ReasonWeights)
	}

	bad := p
	bad.Anomaly.HardReasons = []string{"nonsense"}
	bad.Anomaly.ReasonWeights = map[string]int{"merchant_blocked": -1, "card_paused": 0, "card_closed": 0}
	_, err = bad.Normalize()
	for _, field := range []string{"policy.anomaly.hard_reasons[0]", "policy.anomaly.reason_weights.merchant_blocked"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
}
