package alerts

import (
	"fmt"
	"net/http"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
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
)

// Config is the process-wide alert routing.
type Config struct {
	SlackURL      string
	WebhookURL    string
	WebhookSecret string
	// IssuerDownAfter: DefaultIssuerDownAfter when zero.
	IssuerDownAfter time.Duration
	// Client sends every delivery; nil means a client with a 10 s timeout.
	Client *http.Client
	// Link is the dashboard address of an agent (dashboard.AgentLink); nil means no link.
	Link func(agentID string) string
}

// ConfigFromEnv reads Config from the environment through getenv (os.Getenv).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{SlackURL: getenv(EnvSlackURL), WebhookURL: getenv(EnvWebhookURL), WebhookSecret: getenv(EnvWebhookSecret)}
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
		client = &http.Client{Timeout: defaultTimeout}
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
	if c.SlackURL != "" {
		n.Sinks = append(n.Sinks, &SlackSink{URL: c.SlackURL, Client: client})
	}
	if c.WebhookURL != "" {
		n.Sinks = append(n.Sinks, &WebhookSink{URL: c.WebhookURL, Key: key, Client: client})
	}
	n.AgentWebhook = func(url string) Sink {
		return &WebhookSink{URL: url, Key: key, Client: client, SinkName: AgentWebhookSinkName}
	}
	return n, nil
}
