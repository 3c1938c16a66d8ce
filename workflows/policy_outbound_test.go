package workflows_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cardwarden/cardwarden/internal/outbound"
	"github.com/cardwarden/cardwarden/workflows"
)

// Issue 12, item 3: credentials_push_url and alerts.webhook_url accepted loopback, 0.0.0.0,
// link-local (metadata) addresses, plain http and user:pass@. The parser refuses them with
// the field named; the operator's rules (dev, allow-list) lift only http and internal targets.
func TestPolicyRefusesUnsafeOutboundURLs(t *testing.T) {
	bad := []string{
		"http://agent.example.com/cards",
		"https://127.0.0.1/cards",
		"https://localhost:9000/cards",
		"https://0.0.0.0:9000/cards",
		"https://[::]/cards",
		"https://169.254.169.254/latest/meta-data/iam",
		"https://[fe80::1]/cards",
		"https://10.0.0.5/cards",
		"https://192.168.1.20/cards",
		"https://[fd00::5]/cards",
		"https://[::ffff:10.0.0.5]/cards",
		"https://224.0.0.1/cards",
		"https://user:hunter2@agent.example.com/cards",
		"https://agent.example.com/" + strings.Repeat("x", 3000),
	}
	for _, field := range []string{"policy.credentials_push_url", "policy.alerts.webhook_url"} {
		for _, u := range bad {
			doc := `{"agent_id":"demo","daily_limit_usd":25,"credentials_push_url":` + quote(u) + `}`
			if field == "policy.alerts.webhook_url" {
				doc = `{"agent_id":"demo","daily_limit_usd":25,"alerts":{"webhook_url":` + quote(u) + `}}`
			}
			_, err := workflows.ParsePolicy([]byte(doc))
			var fe workflows.FieldErrors
			if !errors.As(err, &fe) || len(fe) != 1 || fe[0].Field != field {
				t.Errorf("%s = %.80q: %v; want one error naming %s", field, u, err, field)
				continue
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error repeats the URL's password: %v", err)
			}
		}
	}
	good := `{"agent_id":"demo","daily_limit_usd":25,"credentials_push_url":"https://agent.example.com/cards","alerts":{"webhook_url":"https://hooks.example.com/cw"}}`
	if _, err := workflows.ParsePolicy([]byte(good)); err != nil {
		t.Fatal(err)
	}

	// cardwarden dev: http and loopback are fine, metadata and private addresses are not.
	dev := outbound.Dev()
	if _, err := workflows.ParsePolicyWith([]byte(`{"agent_id":"demo","daily_limit_usd":25,"credentials_push_url":"http://127.0.0.1:9000/cards"}`), dev); err != nil {
		t.Fatalf("dev, loopback: %v", err)
	}
	for _, u := range []string{"http://169.254.169.254/x", "http://10.0.0.5/x", "http://0.0.0.0:9000/x"} {
		if _, err := workflows.ParsePolicyWith([]byte(`{"agent_id":"demo","daily_limit_usd":25,"credentials_push_url":`+quote(u)+`}`), dev); err == nil {
			t.Errorf("dev accepted %s", u)
		}
	}
	// An operator's allow-list.
	internal := outbound.Rules{Allow: []string{"10.0.0.0/24"}}
	if _, err := workflows.ParsePolicyWith([]byte(`{"agent_id":"demo","daily_limit_usd":25,"credentials_push_url":"https://10.0.0.5/cards"}`), internal); err != nil {
		t.Fatalf("allow-listed: %v", err)
	}

	// What the workflow itself refuses, whatever the operator's rules: Normalize.
	for _, u := range []string{"https://user:pw@agent.example.com/", "https://169.254.169.254/", "https://0.0.0.0/"} {
		p := workflows.Policy{AgentID: "demo", CredentialsPushURL: u}
		p.DailyLimitUSD = 2500
		if _, err := p.Normalize(); err == nil || !strings.Contains(err.Error(), "policy.credentials_push_url") {
			t.Errorf("Normalize accepted %s: %v", u, err)
		}
	}
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range []byte(s) {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteByte(r)
		default:
			b.WriteByte(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
