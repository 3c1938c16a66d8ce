package workflows_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/cardwarden/cardwarden/internal/outbound"
	"github.com/cardwarden/cardwarden/workflows"
)

// policySeeds are typical, full and broken policies: what a person types into `temporal
// workflow start --input`, the Web UI or POST /v1/agents.
var policySeeds = []string{
	`{"agent_id":"support-bot","daily_limit_usd":50}`,
	`{"agent_id":"a","daily_limit_usd":"12.50","monthly_limit_usd":300,"timezone":"America/New_York","reset_cron":"30 6 * * *",
	  "rotate_cron":"off","rotation_grace":"30m","card_ttl":"7d","retire_at":"2027-06-30T17:00:00-04:00",
	  "anomaly":{"window":"10m","max_declines":3,"hard_reasons":[],"revoke_after_freezes":1,"reason_weights":{"merchant_blocked":2,"card_paused":1}},
	  "alerts":{"webhook_url":"https://hooks.example.com/cw","thresholds_pct":[100,50,50]}}`,
	`{"agent_id":"b","daily_limit_usd":1,"reset_cron":"@every 2s","rotate_cron":"@weekly","label":"x"}`,
	`{"agent_id":"c","daily_limit_usd":0.001}`,
	`{"agent_id":"","daily_limit_usd":-1,"timezone":"Mars/Base","reset_cron":"61 * * * *","card_ttl":"0s"}`,
	`{"agent_id":"d","daily_limit_usd":5,"reset_cron":"CRON_TZ=Asia/Tokyo 0 0 * * *"}`,
	`{"agent_id":"e","daily_limit_usd":5,"reset_cron":"0 0 30 2 *"}`,
	`{"agent_id":"f","daily_limit_usd":5,"anomaly":{"max_declines":0,"reason_weights":{"nope":1}}}`,
	`{"agent_id":"g","daily_limit_usd":5,"state":{"status":"active"}}`,
	`{"agent_id":"h","daily_limit_usd":5,"unknown":true}`,
	`{"agent_id":"i","daily_limit_usd":5} trailing`,
	`{"agent_id":7,"daily_limit_usd":[5]}`,
	`[]`, `null`, ``, `"policy"`, `{`,
	`{"agent_id":"j","daily_limit_usd":"1e3","rotation_grace":"719h","card_ttl":"720h","alerts":{"thresholds_pct":[1,1000]}}`,
	`{"agent_id":"k","daily_limit_usd":5,"retire_at":"not a time","rotation_grace":"-1h","anomaly":{"window":"25h"}}`,
	// Outbound URLs a hostile policy author would try (issue 12): internal and metadata
	// addresses, plain http, credentials in the URL, odd encodings of loopback.
	`{"agent_id":"l","daily_limit_usd":5,"credentials_push_url":"http://169.254.169.254/latest/meta-data/"}`,
	`{"agent_id":"m","daily_limit_usd":5,"credentials_push_url":"https://user:pass@agent.example.com/"}`,
	`{"agent_id":"n","daily_limit_usd":5,"credentials_push_url":"https://[::ffff:127.0.0.1]:8080/"}`,
	`{"agent_id":"o","daily_limit_usd":5,"alerts":{"webhook_url":"https://0.0.0.0:8080/"}}`,
	`{"agent_id":"p","daily_limit_usd":5,"alerts":{"webhook_url":"https://10.1.2.3/\u0000"}}`,
	`{"agent_id":"q","daily_limit_usd":5,"credentials_push_url":"https://localhost./x","alerts":{"webhook_url":"http://hooks.example.com/"}}`,
	`{"agent_id":"r","daily_limit_usd":5,"credentials_push_url":"https://agent.example.com/\xff%ff"}`,
}

// FuzzParsePolicy: the policy parser is the workflow's input and the management API's body, so
// it sees whatever anyone types. It must never panic; what it rejects it rejects with field
// errors naming the field; what it accepts is already normalized (normalizing again changes
// nothing) and survives a JSON round trip unchanged, because continue-as-new and the state
// query carry it as JSON. The workflow's own decoder (Input.UnmarshalJSON) must agree with it.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range policySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := workflows.ParsePolicy(b)

		var in workflows.Input
		uerr := json.Unmarshal(b, &in)
		if uerr != nil && json.Valid(b) {
			t.Fatalf("Input.UnmarshalJSON failed on valid JSON %q: %v (it must leave the error to the workflow)", b, uerr)
		}

		if err != nil {
			var fe workflows.FieldErrors
			if !errors.As(err, &fe) || len(fe) == 0 {
				t.Fatalf("ParsePolicy(%q): error %T %v is not FieldErrors", b, err, err)
			}
			for _, e := range fe {
				if e.Msg == "" || !(e.Field == "policy" || strings.HasPrefix(e.Field, "policy.") || e.Field == "state") {
					t.Fatalf("ParsePolicy(%q): field error %+v does not name a policy field", b, e)
				}
			}
			return
		}
		// Accepted outbound URLs pass the production outbound rules: https, no credentials,
		// no internal or metadata address written into the URL.
		for _, u := range []string{p.CredentialsPushURL, p.Alerts.WebhookURL} {
			if u != "" {
				if err := (outbound.Rules{}).CheckURL(u); err != nil {
					t.Fatalf("ParsePolicy(%q) accepted outbound URL %q: %v", b, u, err)
				}
			}
		}
		again, err := p.Normalize()
		if err != nil {
			t.Fatalf("normalizing the accepted policy %+v again failed: %v", p, err)
		}
		if !reflect.DeepEqual(again, p) {
			t.Fatalf("Normalize is not idempotent:\n first %+v\nsecond %+v", p, again)
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("marshal accepted policy: %v", err)
		}
		back, err := workflows.ParsePolicy(out)
		if err != nil {
			t.Fatalf("accepted policy %q does not parse back from its own JSON %s: %v", b, out, err)
		}
		if !reflect.DeepEqual(back, p) {
			t.Fatalf("JSON round trip changed the policy:\n  in %s\n out %s\nwas %+v\n is %+v", b, out, p, back)
		}
		if uerr == nil && in.State == nil {
			fromInput, err := in.Policy.Normalize()
			if err != nil || !reflect.DeepEqual(fromInput, p) {
				t.Fatalf("workflow input decodes %q differently: %+v, %v; ParsePolicy %+v", b, fromInput, err, p)
			}
		}
	})
}
