package alerts

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/internal/outbound"
)

// Environment variables FromEnv reads.
const (
	// EnvSlackURL is a Slack incoming-webhook URL (https://hooks.slack.com/services/…).
	EnvSlackURL = "CARDWARDEN_ALERT_SLACK_URL"
	// EnvWebhookURL receives every alert as signed JSON.
	EnvWebhookURL = "CARDWARDEN_ALERT_WEBHOOK_URL"
	// EnvWebhookSecret signs EnvWebhookURL's deliveries and agents' own webhooks
	// ("whsec_<base64>" or any string). Unset: deliveries are unsigned.
	EnvWebhookSecret = "CARDWARDEN_ALERT_WEBHOOK_SECRET"
	// EnvIssuerDownAfter is how long an issuer may fail before "issuer-unreachable" (Go
	// duration, default 5m).
	EnvIssuerDownAfter = "CARDWARDEN_ALERT_ISSUER_DOWN_AFTER"
	// EnvPublicURL is where people reach `serve` (https://cardwarden.example.com); alerts link
	// to the agent's dashboard page under it.
	EnvPublicURL = "CARDWARDEN_PUBLIC_URL"
)

// Config is the process-wide alert routing.
type Config struct {
	SlackURL      string
	WebhookURL    string
	WebhookSecret string
	// IssuerDownAfter: DefaultIssuerDownAfter when zero.
	IssuerDownAfter time.Duration
	// Client sends every delivery; nil means outbound.NewClient with Outbound.
	Client *http.Client
	// Outbound are the rules every alert target must pass (the hardened client's): https,
	// no internal address unless allow-listed. NewNotifier checks the Slack and webhook URLs
	// against them up front.
	Outbound outbound.Rules
	// PublicURL is where people reach the dashboard; alerts link to AgentPage(PublicURL, id).
	PublicURL string
	// Link overrides the link of an agent's alerts; nil means AgentPage under PublicURL, or no
	// link without one.
	Link func(agentID string) string
}

// AgentPage is an agent's dashboard page under the dashboard's base URL (the dashboard's
// "#/agents/<id>" route; dashboard.AgentLink builds the same).
func AgentPage(baseURL, agentID string) string {
	return strings.TrimRight(baseURL, "/") + "/#/agents/" + url.PathEscape(agentID)
}

// ConfigFromEnv reads Config from the environment through getenv (os.Getenv).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{SlackURL: getenv(EnvSlackURL), WebhookURL: getenv(EnvWebhookURL), WebhookSecret: getenv(EnvWebhookSecret),
		PublicURL: getenv(EnvPublicURL)}
	if s := getenv(EnvIssuerDownAfter); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return Config{}, fmt.Errorf("%s=%q: want a positive duration such as 5m", EnvIssuerDownAfter, s)
		}
		c.IssuerDownAfter = d
	}
	return c, nil
}

// NewNotifier builds the notifier the config describes. The webhook secret, when set, signs
// the global webhook and every agent's own webhook.
func NewNotifier(c Config) (*Notifier, error) {
	client := c.Client
	if client == nil {
		client = outbound.NewClient(c.Outbound, outbound.Options{Timeout: defaultTimeout})
	}
	for _, u := range []struct{ env, url string }{{EnvSlackURL, c.SlackURL}, {EnvWebhookURL, c.WebhookURL}} {
		if u.url == "" {
			continue
		}
		if err := c.Outbound.CheckURL(u.url); err != nil {
			// The URL itself is the credential of a Slack webhook: name the variable only.
			return nil, fmt.Errorf("%s: %w", u.env, err)
		}
	}
	var key []byte
	if c.WebhookSecret != "" {
		k, err := stdwebhooks.DecodeSecret(c.WebhookSecret)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvWebhookSecret, err)
		}
		key = k
	}
	n := &Notifier{Link: c.Link}
	if n.Link == nil && c.PublicURL != "" {
		base := c.PublicURL
		n.Link = func(agentID string) string { return AgentPage(base, agentID) }
	}
	if c.SlackURL != "" {
		n.Sinks = append(n.Sinks, &SlackSink{URL: c.SlackURL, Client: client})
	}
	if c.WebhookURL != "" {
		n.Sinks = append(n.Sinks, &WebhookSink{URL: c.WebhookURL, Key: key, Client: client})
	}
	n.AgentWebhook = func(url string) Sink {
		return &WebhookSink{URL: url, Key: key, Client: client, SinkName: AgentWebhookSinkName, RequireSignature: true}
	}
	return n, nil
}
