package activities

import (
	"context"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/cardwarden/cardwarden/internal/alerts"
	"github.com/cardwarden/cardwarden/workflows"
)

// SendAlert sends an alert at most once per (agent, kind, period) through alerts.Dispatcher:
// the store row claimed first is the record of the alert; the alert then goes to the
// process-wide sinks (Slack, the signed webhook) and the policy's webhook_url, and a failed
// delivery is retried by the activity's retry policy. The sinks that already have the alert
// are kept in the heartbeat details, so a retry does not send it to them twice. Without any
// sink the stored row is the delivery.
func (a *Activities) SendAlert(ctx context.Context, in workflows.AlertInput) (workflows.AlertResult, error) {
	var already []string
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &already)
	}
	d := alerts.Dispatcher{Store: a.Store, Notifier: a.notifier(), Logger: a.log()}
	al := alerts.Alert{AgentID: in.AgentID, Kind: in.Kind, Period: in.Period, Message: in.Message, At: in.At, WebhookURL: in.WebhookURL}
	if in.WebhookURL != "" {
		al.WebhookKey = a.agentPushKey(ctx, in.AgentID)
	}
	res, err := d.Dispatch(ctx, al, already)
	if len(res.Delivered) > len(already) {
		activity.RecordHeartbeat(ctx, res.Delivered)
	}
	if err != nil {
		if alerts.Permanent(err) {
			// The receiver rejects the alert itself; sending it again will not change its mind.
			return workflows.AlertResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "AlertWebhookRejected", nil)
		}
		return workflows.AlertResult{}, temporal.NewApplicationError(err.Error(), "AlertWebhookFailed")
	}
	return workflows.AlertResult{Delivered: true, Duplicate: res.Duplicate}, nil
}

// agentPushKey is the agent's push key, which signs its own alert webhook when no
// process-wide alert secret is set; nil when the agent has none.
func (a *Activities) agentPushKey(ctx context.Context, agentID string) []byte {
	if a.Vault == nil {
		return nil
	}
	sealed, err := a.Store.GetPushKey(ctx, agentID)
	if err != nil {
		return nil
	}
	key, err := a.Vault.OpenPushKey(sealed)
	if err != nil {
		a.log().Warn("push key does not open", "agent_id", agentID, "error", err)
		return nil
	}
	return key
}

// notifier is the configured one, or one that sends only to policies' own webhooks, signed.
func (a *Activities) notifier() *alerts.Notifier {
	if a.Alerts != nil {
		return a.Alerts
	}
	return &alerts.Notifier{Logger: a.log(), AgentWebhook: func(url string) alerts.Sink {
		return &alerts.WebhookSink{URL: url, Client: a.httpClient(), SinkName: alerts.AgentWebhookSinkName, RequireSignature: true}
	}}
}
