package workflows

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/money"
)

// The strict JSON decoder of policies and update requests. encoding/json alone accepts unknown
// fields, keys that match a field only when case is ignored, trailing data and the wrong types
// with messages that do not name the field; people type policies by hand, so every one of
// those is an error here that names the field (policy.anomaly.window: must be …).

// policyDoc mirrors Policy with every field optional and untyped enough to tell "absent"
// from "zero" and to report type errors with the field's name.
type policyDoc struct {
	AgentID         *string         `json:"agent_id"`
	Label           *string         `json:"label"`
	Issuer          *string         `json:"issuer"`
	Currency        *string         `json:"currency"`
	DailyLimitUSD   json.RawMessage `json:"daily_limit_usd"`
	MonthlyLimitUSD json.RawMessage `json:"monthly_limit_usd"`
	Timezone        *string         `json:"timezone"`
	ResetCron       *string         `json:"reset_cron"`
	RotateCron      *string         `json:"rotate_cron"`
	RotationGrace   json.RawMessage `json:"rotation_grace"`
	CardTTL         json.RawMessage `json:"card_ttl"`
	ResetSpread     json.RawMessage `json:"reset_spread"`
	RetireAt        *string         `json:"retire_at"`
	Anomaly         json.RawMessage `json:"anomaly"`
	Alerts          json.RawMessage `json:"alerts"`
	// CredentialsPushURL is optional; see Policy.
	CredentialsPushURL *string         `json:"credentials_push_url"`
	MerchantRules      json.RawMessage `json:"merchant_rules"`
	Velocity           json.RawMessage `json:"velocity"`
	MaxPerPurchaseUSD  json.RawMessage `json:"max_per_purchase_usd"`
	TeamID             *string         `json:"team_id"`
	OnDecisionTimeout  *string         `json:"on_decision_timeout"`
	// State is carried by continue-as-new only; ParsePolicy rejects it.
	State json.RawMessage `json:"state"`
}

type anomalyDoc struct {
	Window             json.RawMessage `json:"window"`
	MaxDeclines        *int            `json:"max_declines"`
	HardReasons        *[]string       `json:"hard_reasons"`
	RevokeAfterFreezes *int            `json:"revoke_after_freezes"`
	ReasonWeights      map[string]int  `json:"reason_weights"`
}

type velocityDoc struct {
	Window       json.RawMessage `json:"window"`
	MaxCount     *int            `json:"max_count"`
	MaxAmountUSD json.RawMessage `json:"max_amount_usd"`
}

type alertsDoc struct {
	WebhookURL    *string `json:"webhook_url"`
	ThresholdsPct *[]int  `json:"thresholds_pct"`
}

// decodeInput strictly decodes a policy document (and the continue-as-new state, if any)
// without applying defaults.
func decodeInput(b []byte) (Policy, *State, error) {
	var doc policyDoc
	if err := strictDecode(b, &doc, "policy"); err != nil {
		return Policy{}, nil, err
	}
	var errs FieldErrors
	var p Policy
	p.AgentID = deref(doc.AgentID)
	p.Label = deref(doc.Label)
	p.Issuer = deref(doc.Issuer)
	p.Currency = deref(doc.Currency)
	p.Timezone = deref(doc.Timezone)
	p.ResetCron = deref(doc.ResetCron)
	p.RotateCron = deref(doc.RotateCron)
	p.CredentialsPushURL = deref(doc.CredentialsPushURL)
	if isAbsent(doc.DailyLimitUSD) {
		errs.add("policy.daily_limit_usd", "required (a decimal amount of dollars, e.g. 25 or \"12.50\")")
	} else if m, err := money.ParseJSON(doc.DailyLimitUSD); err != nil {
		errs.add("policy.daily_limit_usd", "%s", err.Error())
	} else {
		p.DailyLimitUSD = money.Amount(m)
	}
	if !isAbsent(doc.MonthlyLimitUSD) {
		if m, err := money.ParseJSON(doc.MonthlyLimitUSD); err != nil {
			errs.add("policy.monthly_limit_usd", "%s", err.Error())
		} else {
			a := money.Amount(m)
			p.MonthlyLimitUSD = &a
		}
	}
	p.RotationGrace = decodeDuration(doc.RotationGrace, "policy.rotation_grace", &errs)
	p.CardTTL = decodeDuration(doc.CardTTL, "policy.card_ttl", &errs)
	p.ResetSpread = decodeDuration(doc.ResetSpread, "policy.reset_spread", &errs)
	if doc.RetireAt != nil && *doc.RetireAt != "" {
		t, err := time.Parse(time.RFC3339, *doc.RetireAt)
		if err != nil {
			errs.add("policy.retire_at", "%q is not an RFC 3339 time such as 2027-01-31T00:00:00Z", *doc.RetireAt)
		} else {
			t = t.UTC()
			p.RetireAt = &t
		}
	}
	if !isAbsent(doc.Anomaly) {
		var a anomalyDoc
		if err := strictDecode(doc.Anomaly, &a, "policy.anomaly"); err != nil {
			errs = append(errs, asFieldErrors(err)...)
		} else {
			p.Anomaly.Window = decodeDuration(a.Window, "policy.anomaly.window", &errs)
			p.Anomaly.MaxDeclines = deref(a.MaxDeclines)
			if a.HardReasons != nil {
				p.Anomaly.HardReasons = append([]string{}, *a.HardReasons...)
			}
			p.Anomaly.RevokeAfterFreezes = deref(a.RevokeAfterFreezes)
			p.Anomaly.ReasonWeights = a.ReasonWeights
			if a.MaxDeclines != nil && *a.MaxDeclines == 0 {
				errs.add("policy.anomaly.max_declines", "must be at least 1")
			}
			if a.RevokeAfterFreezes != nil && *a.RevokeAfterFreezes == 0 {
				errs.add("policy.anomaly.revoke_after_freezes", "must be at least 1")
			}
		}
	}
	if !isAbsent(doc.Alerts) {
		var a alertsDoc
		if err := strictDecode(doc.Alerts, &a, "policy.alerts"); err != nil {
			errs = append(errs, asFieldErrors(err)...)
		} else {
			p.Alerts.WebhookURL = deref(a.WebhookURL)
			if a.ThresholdsPct != nil {
				p.Alerts.ThresholdsPct = append([]int{}, *a.ThresholdsPct...)
			}
		}
	}
	p.TeamID = deref(doc.TeamID)
	p.OnDecisionTimeout = deref(doc.OnDecisionTimeout)
	if !isAbsent(doc.MerchantRules) {
		if err := strictDecode(doc.MerchantRules, &p.MerchantRules, "policy.merchant_rules"); err != nil {
			errs = append(errs, asFieldErrors(err)...)
		}
	}
	if !isAbsent(doc.Velocity) {
		var v velocityDoc
		if err := strictDecode(doc.Velocity, &v, "policy.velocity"); err != nil {
			errs = append(errs, asFieldErrors(err)...)
		} else {
			p.Velocity.Window = decodeDuration(v.Window, "policy.velocity.window", &errs)
			p.Velocity.MaxCount = deref(v.MaxCount)
			if v.MaxCount != nil && *v.MaxCount == 0 {
				errs.add("policy.velocity.max_count", "must be at least 1")
			}
			p.Velocity.MaxAmountUSD = decodeAmount(v.MaxAmountUSD, "policy.velocity.max_amount_usd", &errs)
			if isAbsent(v.Window) {
				errs.add("policy.velocity.window", "required (e.g. \"1m\")")
			}
		}
	}
	p.MaxPerPurchaseUSD = decodeAmount(doc.MaxPerPurchaseUSD, "policy.max_per_purchase_usd", &errs)
	var state *State
	if !isAbsent(doc.State) {
		state = new(State)
		if err := json.Unmarshal(doc.State, state); err != nil {
			errs.add("state", "%s", err.Error())
		}
	}
	if err := errs.err(); err != nil {
		return Policy{}, nil, err
	}
	return p, state, nil
}

func decodeDuration(raw json.RawMessage, field string, errs *FieldErrors) Duration {
	if isAbsent(raw) {
		return 0
	}
	var d Duration
	if err := json.Unmarshal(raw, &d); err != nil {
		errs.add(field, "%s", err.Error())
		return 0
	}
	if d == 0 {
		// Zero would mean "use the default"; say so instead of silently defaulting.
		errs.add(field, "must be greater than 0 (omit the field for the default)")
	}
	return d
}

// strictDecode decodes one JSON object, rejecting unknown fields and trailing data, and
// turns decoder errors into field errors under prefix.
func strictDecode(b []byte, v any, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return FieldErrors{decodeError(err, prefix)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return FieldErrors{{Field: prefix, Msg: "unexpected data after the JSON object"}}
	}
	// encoding/json matches keys case-insensitively; a policy typed by hand should not
	// half-work because "Daily_Limit_USD" happened to match.
	return exactKeys(b, v, prefix).err()
}

// exactKeys reports object keys that are not, byte for byte, a JSON field name of v's type.
func exactKeys(b []byte, v any, prefix string) FieldErrors {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	known := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			known[name] = true
		}
	}
	var errs FieldErrors
	for _, k := range workflow.DeterministicKeys(m) {
		if !known[k] {
			errs.add(prefix+"."+k, "unknown field")
		}
	}
	return errs
}

func decodeError(err error, prefix string) FieldError {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return FieldError{Field: prefix, Msg: "must be a JSON object"}
		}
		return FieldError{Field: prefix + "." + typeErr.Field, Msg: "must be " + jsonKind(typeErr.Type.Kind().String()) + ", got " + typeErr.Value}
	case errors.As(err, &syntaxErr):
		return FieldError{Field: prefix, Msg: fmt.Sprintf("invalid JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return FieldError{Field: prefix + "." + name, Msg: "unknown field"}
	case errors.Is(err, io.EOF):
		return FieldError{Field: prefix, Msg: "empty input, want a JSON object"}
	default:
		return FieldError{Field: prefix, Msg: err.Error()}
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int64", "int32":
		return "an integer"
	case "slice":
		return "a list"
	case "map", "struct":
		return "an object"
	case "bool":
		return "true or false"
	default:
		return "a " + goKind
	}
}

func asFieldErrors(err error) FieldErrors {
	var fe FieldErrors
	if errors.As(err, &fe) {
		return fe
	}
	return FieldErrors{{Field: "policy", Msg: err.Error()}}
}

func isAbsent(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
