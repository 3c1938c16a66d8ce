package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/internal/outbound"
)

// defaultTimeout bounds one delivery; the activity's StartToClose timeout bounds all of them.
const defaultTimeout = 10 * time.Second

// defaultClient is the hardened outbound client with the production rules (https, no
// redirects, no internal addresses).
var defaultClient = outbound.NewClient(outbound.Rules{}, outbound.Options{Timeout: defaultTimeout})

// userAgent identifies cardwarden to receivers.
const userAgent = "cardwarden-alerts"

// SlackSink posts to a Slack incoming webhook (https://api.slack.com/messaging/webhooks) or any
// receiver that accepts its format (Mattermost, Rocket.Chat, Discord's /slack endpoint). The
// webhook URL is the credential, so it is never logged: Name is only "slack".
type SlackSink struct {
	URL    string
	Client *http.Client
	// SinkName overrides "slack", to tell several Slack sinks apart.
	SinkName string
}

func (s *SlackSink) Name() string {
	if s.SinkName != "" {
		return s.SinkName
	}
	return "slack"
}

// slackMessage is the incoming-webhook body: text is the notification fallback, blocks the
// rendering.
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

var severityEmoji = map[Severity]string{
	SeverityInfo:     ":information_source:",
	SeverityWarning:  ":warning:",
	SeverityCritical: ":rotating_light:",
}

// SlackBody renders an alert as an incoming-webhook message.
func SlackBody(a Alert) ([]byte, error) {
	sev := a.severity()
	head := fmt.Sprintf("%s *%s*", severityEmoji[sev], slackEscape(a.Title()))
	if a.Link != "" {
		head += fmt.Sprintf("  <%s|open dashboard>", a.Link)
	}
	ctxLine := fmt.Sprintf("cardwarden · %s · kind `%s` · period `%s` · %s", sev, slackEscape(a.Kind), slackEscape(a.Period),
		a.At.UTC().Format(time.RFC3339))
	msg := slackMessage{
		Text: fmt.Sprintf("[%s] %s — %s", sev, a.Title(), a.Message),
		Blocks: []slackBlock{
			{Type: "section", Text: &slackText{Type: "mrkdwn", Text: head + "\n" + slackEscape(a.Message)}},
			{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: ctxLine}}},
		},
	}
	return json.Marshal(msg)
}

// slackEscape escapes the three characters Slack's mrkdwn treats as control characters.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func (s *SlackSink) Send(ctx context.Context, a Alert) error {
	body, err := SlackBody(a)
	if err != nil {
		return &DeliveryError{Sink: s.Name(), Permanent: true, Err: err}
	}
	return post(ctx, s.Client, s.Name(), s.URL, body, func(h http.Header) {
		h.Set("Content-Type", "application/json")
	})
}

// WebhookSink POSTs the alert as JSON (WebhookPayload). With a Key it signs each delivery the
// Standard Webhooks way — webhook-id (the alert's Key, stable across retries so the receiver
// can deduplicate), webhook-timestamp, and webhook-signature "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>" — the same format cardwarden verifies on issuer webhooks, so receivers
// can use any Standard Webhooks library. Every delivery also carries Idempotency-Key.
type WebhookSink struct {
	URL string
	// Key is the HMAC key (stdwebhooks.DecodeSecret of a "whsec_…" or raw secret); nil signs
	// with the alert's WebhookKey, or sends unsigned when that is nil too and
	// RequireSignature is off.
	Key []byte
	// RequireSignature refuses (permanently) to send a delivery that no key signs. Agents'
	// own webhooks (policy alerts.webhook_url) require it.
	RequireSignature bool
	Client           *http.Client
	// SinkName overrides "webhook".
	SinkName string
	// Now stamps webhook-timestamp; time.Now when nil.
	Now func() time.Time
}

func (s *WebhookSink) Name() string {
	if s.SinkName != "" {
		return s.SinkName
	}
	return "webhook"
}

// WebhookPayload is the generic webhook's JSON body. The fields of the first version (type,
// agent_id, kind, period, message, at) keep their meaning.
type WebhookPayload struct {
	Type     string   `json:"type"` // always "cardwarden.alert"
	ID       string   `json:"id"`   // agent_id/kind/period
	AgentID  string   `json:"agent_id"`
	Kind     string   `json:"kind"`
	Period   string   `json:"period"`
	Severity Severity `json:"severity"`
	Title    string   `json:"title"`
	Message  string   `json:"message"`
	At       string   `json:"at"` // RFC 3339, UTC
	Link     string   `json:"link,omitempty"`
}

// PayloadType is WebhookPayload.Type.
const PayloadType = "cardwarden.alert"

// WebhookBody renders an alert as the generic webhook's JSON.
func WebhookBody(a Alert) ([]byte, error) {
	return json.Marshal(WebhookPayload{
		Type: PayloadType, ID: a.Key(), AgentID: a.AgentID, Kind: a.Kind, Period: a.Period,
		Severity: a.severity(), Title: a.Title(), Message: a.Message,
		At: a.At.UTC().Format(time.RFC3339), Link: a.Link,
	})
}

func (s *WebhookSink) Send(ctx context.Context, a Alert) error {
	body, err := WebhookBody(a)
	if err != nil {
		return &DeliveryError{Sink: s.Name(), Permanent: true, Err: err}
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	key := s.Key
	if len(key) == 0 {
		key = a.WebhookKey
	}
	if len(key) == 0 && s.RequireSignature {
		return &DeliveryError{Sink: s.Name(), Permanent: true,
			Err: fmt.Errorf("refusing to send an unsigned alert: set %s, or give the agent a token (its push key signs)", EnvWebhookSecret)}
	}
	return post(ctx, s.Client, s.Name(), s.URL, body, func(h http.Header) {
		h.Set("Content-Type", "application/json")
		// Receivers deduplicate on this when a retry follows a delivery whose answer was lost.
		h.Set("Idempotency-Key", a.Key())
		if len(key) > 0 {
			stdwebhooks.Sign(h, key, a.Key(), now(), body)
		}
	})
}

// post sends one request and classifies the outcome. Errors name the sink and the host only:
// webhook URLs often embed their credential in the path.
func post(ctx context.Context, c *http.Client, sink, rawURL string, body []byte, headers func(http.Header)) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &DeliveryError{Sink: sink, Permanent: true, Err: fmt.Errorf("webhook URL is not an http(s) URL")}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return &DeliveryError{Sink: sink, Permanent: true, Err: fmt.Errorf("build request to %s: %w", u.Host, err)}
	}
	headers(req.Header)
	req.Header.Set("User-Agent", userAgent)
	if c == nil {
		c = defaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		// The *url.Error would repeat the full URL; keep only what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &DeliveryError{Sink: sink, Permanent: outbound.IsRefused(err), Err: fmt.Errorf("post to %s: %w", u.Host, err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if outbound.IsRedirect(resp.StatusCode) {
		// The client never follows one: the alert would go to a target nobody checked.
		return &DeliveryError{Sink: sink, StatusCode: resp.StatusCode, Permanent: true, Err: outbound.RedirectError(resp.StatusCode, u.Host)}
	}
	return classifyStatus(sink, resp.StatusCode)
}
