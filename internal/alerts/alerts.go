// Package alerts tells people when an agent's card needs them: a spend threshold crossed, a
// card frozen or revoked, an overspend, a failed rotation, an issuer that stopped answering.
//
// An Alert goes to every configured Sink (a Slack-compatible incoming webhook, a generic
// Standard Webhooks-signed JSON webhook, and the agent policy's own webhook_url). A Dispatcher
// adds the store's once-only guarantee: an alert is claimed per (agent, kind, period) before it
// is sent and marked sent after, so retries — by the SendAlert activity's retry policy — never
// produce a second alert for the same crossing. The package knows nothing of Temporal: it
// returns DeliveryErrors that say whether a retry can help, and the activity maps them.
package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Kinds. The workflow's kinds (workflows.Alert*) are the same strings; "threshold-<pct>" carries
// the percentage. KindIssuerUnreachable is raised by IssuerWatch, not by a workflow.
const (
	KindThreshold         = "threshold" // prefix: "threshold-80"
	KindOverspend         = "overspend"
	KindFrozen            = "frozen"
	KindRevoked           = "revoked"
	KindRotationFailed    = "rotation-failed"
	KindFreezeFailed      = "freeze-failed"
	KindCardGone          = "card-gone"
	KindIssuerUnreachable = "issuer-unreachable"
)

// Severity orders alerts for people and for routing rules in the receiving system.
type Severity string

const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// SeverityOf is the default severity of a kind: critical when money may be moving without
// control or the card is gone, warning when a human should look today, info otherwise.
func SeverityOf(kind string) Severity {
	switch {
	case kind == KindOverspend, kind == KindRevoked, kind == KindFreezeFailed, kind == KindIssuerUnreachable,
		kind == KindCardGone:
		return SeverityCritical
	case kind == KindFrozen, kind == KindRotationFailed, kind == "limit-failed", kind == "reconcile-failed",
		kind == "reconcile", kind == KindThreshold+"-100":
		return SeverityWarning
	default:
		return SeverityInfo
	}
}

// Alert is one notification. (AgentID, Kind, Period) identifies it: the Dispatcher sends each
// at most once. AgentID is empty for fleet-level alerts (an issuer outage).
type Alert struct {
	AgentID string    `json:"agent_id"`
	Kind    string    `json:"kind"`
	Period  string    `json:"period"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
	// Severity defaults to SeverityOf(Kind).
	Severity Severity `json:"severity,omitempty"`
	// WebhookURL is the agent policy's own alert webhook (alerts.webhook_url), sent to in
	// addition to the process-wide sinks.
	WebhookURL string `json:"-"`
	// WebhookKey signs the delivery to WebhookURL when the notifier has no process-wide
	// secret: the agent's push key (derived from its token, starter.PushKey), so the agent's
	// owner can verify it. A delivery to WebhookURL is never sent unsigned.
	WebhookKey []byte `json:"-"`
	// Link is where a person can see more (the agent's dashboard page); Notifier.Link fills it.
	Link string `json:"link,omitempty"`
}

// Key is the alert's identity, used as the idempotency key receivers can deduplicate on.
func (a Alert) Key() string { return a.AgentID + "/" + a.Kind + "/" + a.Period }

func (a Alert) severity() Severity {
	if a.Severity != "" {
		return a.Severity
	}
	return SeverityOf(a.Kind)
}

// Title is a one-line summary, e.g. "frozen: support-bot".
func (a Alert) Title() string {
	who := a.AgentID
	if who == "" {
		who = "fleet"
	}
	return a.Kind + ": " + who
}

// Sink delivers alerts somewhere. Name is stable and secret-free: it is logged, used as a
// metric label and remembered across retries to skip sinks that already have the alert.
type Sink interface {
	Name() string
	Send(ctx context.Context, a Alert) error
}

// DeliveryError is a failed delivery to one sink.
type DeliveryError struct {
	Sink       string
	StatusCode int // 0 when no HTTP answer was received
	// Permanent is true when sending the same alert again cannot succeed (the receiver
	// rejected it with a 4xx other than 408/429, or the sink is misconfigured).
	Permanent bool
	Err       error
}

func (e *DeliveryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "alert sink %s", e.Sink)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, " answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Permanent {
		b.WriteString(" (permanent)")
	}
	return b.String()
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Permanent reports whether err (from Notifier.Send or Dispatcher.Dispatch) cannot be fixed by
// retrying: every sink that failed failed permanently. A nil error is not permanent.
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	var found bool
	for _, e := range flatten(err) {
		var de *DeliveryError
		if !errors.As(e, &de) || !de.Permanent {
			return false
		}
		found = true
	}
	return found
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// classifyStatus turns an HTTP answer into nil or a DeliveryError: 2xx is delivered; 408, 429
// and 5xx are worth retrying; any other answer is the receiver refusing this alert for good.
func classifyStatus(sink string, status int) error {
	switch {
	case status >= 200 && status < 300:
		return nil
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return &DeliveryError{Sink: sink, StatusCode: status}
	default:
		return &DeliveryError{Sink: sink, StatusCode: status, Permanent: true}
	}
}

// Notifier fans an alert out to sinks.
type Notifier struct {
	// Sinks receive every alert.
	Sinks []Sink
	// AgentWebhook builds the sink for an alert's own WebhookURL (an agent policy's
	// alerts.webhook_url); nil means a WebhookSink signed with the alert's WebhookKey and the
	// default (hardened) client.
	AgentWebhook func(url string) Sink
	// Link returns the dashboard address of an agent, added to alerts that have none; nil
	// means no link.
	Link func(agentID string) string
	// Observe, when set, is told of every delivery attempt (metrics).
	Observe func(sink, kind string, err error)
	Logger  *slog.Logger
}

// AgentWebhookSinkName names the sink of an alert's own WebhookURL.
const AgentWebhookSinkName = "agent-webhook"

func (n *Notifier) log() *slog.Logger {
	if n != nil && n.Logger != nil {
		return n.Logger
	}
	return slog.Default()
}

// sinksFor lists the sinks an alert goes to.
func (n *Notifier) sinksFor(a Alert) []Sink {
	var out []Sink
	if n != nil {
		out = append(out, n.Sinks...)
	}
	if a.WebhookURL != "" {
		if n != nil && n.AgentWebhook != nil {
			out = append(out, n.AgentWebhook(a.WebhookURL))
		} else {
			out = append(out, &WebhookSink{SinkName: AgentWebhookSinkName, URL: a.WebhookURL, RequireSignature: true})
		}
	}
	return out
}

// Send delivers a to every sink whose name is not in already (the sinks an earlier attempt
// delivered to), and returns the names of every sink that now has the alert — already plus
// this attempt's successes — and the failures joined. A caller that retries passes the
// returned names back, so a sink that took the alert does not get it twice when another sink
// failed. With no sinks at all, Send succeeds: the caller's record of the alert is its
// delivery.
func (n *Notifier) Send(ctx context.Context, a Alert, already []string) ([]string, error) {
	if a.At.IsZero() {
		a.At = time.Now()
	}
	a.At = a.At.UTC()
	if a.Severity == "" {
		a.Severity = SeverityOf(a.Kind)
	}
	if a.Link == "" && n != nil && n.Link != nil && a.AgentID != "" {
		a.Link = n.Link(a.AgentID)
	}
	delivered := slices.Clone(already)
	var errs []error
	for _, s := range n.sinksFor(a) {
		name := s.Name()
		if slices.Contains(delivered, name) {
			continue
		}
		err := s.Send(ctx, a)
		if n != nil && n.Observe != nil {
			n.Observe(name, a.Kind, err)
		}
		if err != nil {
			var de *DeliveryError
			if !errors.As(err, &de) {
				err = &DeliveryError{Sink: name, Err: err}
			}
			n.log().WarnContext(ctx, "alert delivery failed", "agent_id", a.AgentID, "kind", a.Kind, "period", a.Period,
				"sink", name, "error", err)
			errs = append(errs, err)
			continue
		}
		delivered = append(delivered, name)
	}
	return delivered, errors.Join(errs...)
}
