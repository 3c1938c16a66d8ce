package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Every effect of the workflow goes through these wrappers. They pick the task queue,
// timeouts and retry policy of each kind of call, and count the history each writes
// (history.go).

// issuerRetry retries issuer calls at most 10 s apart: while one runs, the workflow handles
// no signal (a decline burst waits), and rate-limited attempts (retried after the issuer's
// Retry-After) count towards the backoff too, so a longer cap left a workflow blocked for
// minutes by a few 5xx after a burst of 429s (found by the model test).
var issuerRetry = &temporal.RetryPolicy{
	InitialInterval:    time.Second,
	BackoffCoefficient: 2,
	MaximumInterval:    10 * time.Second,
}

// changeUrgentStops is the workflow.GetVersion change id of stopping cards off the paced
// IssuerTaskQueue (first on IssuerUrgentTaskQueue, now on the workflow's own TaskQueue).
const changeUrgentStops = "stop-cards-on-urgent-queue"

// issuerCall runs an issuer activity (a method of ia) on the issuer task queue. The
// schedule-to-close bound keeps an issuer outage from blocking the workflow forever: the
// caller decides what a failure means (keep the old card, retry later, alert).
func (wf *agentCard) issuerCall(ctx workflow.Context, activity any, startToClose time.Duration, in, out any) error {
	return wf.issuerCallOn(ctx, false, activity, startToClose, in, out)
}

// issuerCallOn is issuerCall with the queue chosen by the caller: urgent calls (those that
// stop a card) run, in runs that have changeUrgentStops, on the workflow's own task queue, so
// a freeze never waits behind a fleet-wide reset's paced limit updates, and the worker that
// decided the stop starts it at once (eager activity execution, which needs the activity on the
// workflow's queue) instead of the server dispatching it through a queue of its own: that
// round trip was half of a quiet freeze (`cardwarden bench --scenario freeze`: p50 89 → 45 ms,
// against a floor of 47). The queue is not rate limited: a stop is never held back, and the
// rare 429 of a mass stop is retried after the issuer's Retry-After. Activity options are not
// part of what replay compares, so runs that stopped cards on IssuerUrgentTaskQueue replay.
func (wf *agentCard) issuerCallOn(ctx workflow.Context, urgent bool, activity any, startToClose time.Duration, in, out any) error {
	queue := IssuerTaskQueue
	if urgent && wf.urgentStops {
		queue = TaskQueue
	}
	heartbeat, _ := ctx.Value(heartbeatKey{}).(time.Duration)
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              queue,
		StartToCloseTimeout:    startToClose,
		ScheduleToCloseTimeout: 15 * time.Minute,
		HeartbeatTimeout:       heartbeat,
		RetryPolicy:            issuerRetry,
	})
	wf.wrote(eventsPerActivity)
	err := workflow.ExecuteActivity(ctx, activity, in).Get(ctx, out)
	if err != nil {
		wf.logger(ctx).Warn("issuer activity failed", "activity", activityType(err), "error", err)
	}
	return err
}

// heartbeatKey carries an issuer call's heartbeat timeout (issueCard) to issuerCallOn.
type heartbeatKey struct{}

// issueHeartbeat is IssueCard's heartbeat timeout. The activity heartbeats while it runs, so a
// worker killed in the middle of an issue is noticed after this long rather than after the
// minute of its start-to-close timeout; the retry sends the same idempotency key and gets the
// same card. Activity options are not part of what replay compares: no version marker needed.
const issueHeartbeat = 10 * time.Second

// issueCard runs the IssueCard activity on the issuer queue.
func (wf *agentCard) issueCard(ctx workflow.Context, in IssueCardInput, out *IssuedCard) error {
	return wf.issuerCall(workflow.WithValue(ctx, heartbeatKey{}, issueHeartbeat), ia.IssueCard, time.Minute, in, out)
}

// local runs a short store activity (a method of la) in the workflow worker. Store outages
// are retried for a while; the callers of best-effort writes log and move on.
func (wf *agentCard) local(ctx workflow.Context, activity any, in, out any) error {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: 5 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    500 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
	})
	wf.wrote(eventsPerLocal)
	err := workflow.ExecuteLocalActivity(ctx, activity, in).Get(ctx, out)
	if err != nil {
		wf.logger(ctx).Warn("local activity failed", "error", err)
	}
	return err
}

// updateLimitNow tries a reset's limit update once in this worker (UpdateLimitNow) and
// reports whether it was applied. A fleet's resets are most of the workflow tasks at its reset
// instant, and the paced queue's activity costs each one a second task and a dispatch through
// the server; a freeze or a purchase decision waits behind all of them (cardwarden bench
// --scenario reset). The local try takes room in the worker's share of the issuer's rate limit
// or does not call; whatever it did not apply goes to the paced queue as before.
func (wf *agentCard) updateLimitNow(ctx workflow.Context, in UpdateLimitInput) bool {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 5 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	wf.wrote(eventsPerLocal)
	var res LimitApplied
	if err := workflow.ExecuteLocalActivity(ctx, la.UpdateLimitNow, in).Get(ctx, &res); err != nil {
		wf.logger(ctx).Info("local limit update failed; scheduling it on the paced queue", "error", err)
		return false
	}
	return res.Applied
}

// mustLocal runs a local activity until it succeeds or fails non-retryably, waiting between
// rounds: the store writes it is used for (the agent row cards refer to) are prerequisites.
func (wf *agentCard) mustLocal(ctx workflow.Context, activity any, in, out any) error {
	for {
		err := wf.local(ctx, activity, in, out)
		if err == nil || !isRetryable(err) {
			return err
		}
		if err := wf.sleep(ctx, time.Minute); err != nil {
			return err
		}
	}
}

// sleep waits on a timer; the workflow handles nothing else meanwhile.
func (wf *agentCard) sleep(ctx workflow.Context, d time.Duration) error {
	wf.wrote(eventsPerTimer + eventsPerWake)
	return workflow.Sleep(ctx, d)
}

// backgroundRetry retries alerts and credential pushes: their receivers may be down a while.
var backgroundRetry = &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 2 * time.Minute}

// alert sends an alert without waiting for it: delivery may retry for minutes, and a decline
// burst must not wait for a webhook. Continue-as-new and completion wait for pending alerts.
func (wf *agentCard) alert(ctx workflow.Context, kind, period, message string) {
	in := AlertInput{
		AgentID: wf.policy.AgentID, Kind: kind, Period: period, Message: message,
		WebhookURL: wf.policy.Alerts.WebhookURL, At: workflow.Now(ctx),
	}
	wf.inBackground(ctx, ba.SendAlert, in, 10*time.Minute, func(gctx workflow.Context, err error) {
		wf.logger(gctx).Error("alert not delivered", "kind", kind, "period", period, "error", err)
	})
}

// pushCredentials delivers a new card to the agent's credentials_push_url, in the background
// so a slow or failing agent endpoint never delays the lifecycle. A failed push alerts; the
// agent can still pull the card.
func (wf *agentCard) pushCredentials(ctx workflow.Context, card CardRef) {
	if wf.policy.CredentialsPushURL == "" {
		return
	}
	in := PushCredentialsInput{AgentID: wf.policy.AgentID, Issuer: card.Issuer, CardID: card.ID, Generation: card.Generation, URL: wf.policy.CredentialsPushURL}
	wf.inBackground(ctx, ba.PushCredentials, in, 15*time.Minute, func(gctx workflow.Context, err error) {
		wf.alert(gctx, AlertPushFailed, fmt.Sprintf("gen%d", card.Generation), fmt.Sprintf(
			"could not push card ****%s (generation %d) to %s: %s; the agent can still pull it",
			card.Last4, card.Generation, wf.policy.CredentialsPushURL, failureMessage(err)))
	})
}

// inBackground runs an activity (a method of ba) on TaskQueue in a workflow coroutine that
// continue-as-new and completion wait for (wf.background counts them), retried for up to
// scheduleToClose; failed handles its final failure.
func (wf *agentCard) inBackground(ctx workflow.Context, activity, in any, scheduleToClose time.Duration, failed func(workflow.Context, error)) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              TaskQueue,
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: scheduleToClose,
		RetryPolicy:            backgroundRetry,
	})
	wf.wrote(eventsPerActivity)
	wf.background++
	workflow.Go(ctx, func(gctx workflow.Context) {
		defer func() { wf.background-- }()
		if err := workflow.ExecuteActivity(actx, activity, in).Get(gctx, nil); err != nil {
			failed(gctx, err)
		}
	})
}

// setStatus changes the lifecycle status and records it everywhere it is visible.
func (wf *agentCard) setStatus(ctx workflow.Context, s Status, reason string) {
	changed := wf.st.Status != s
	wf.st.Status = s
	wf.st.StatusReason = reason
	if !changed {
		return
	}
	_ = wf.local(ctx, la.SetAgentStatus, SetAgentStatusInput{AgentID: wf.policy.AgentID, Status: s}, nil)
	wf.syncSearchAttributes(ctx)
}

// audit records a human action or a security-relevant automatic one. Best effort: the
// workflow history is the authoritative record of what the workflow did.
func (wf *agentCard) audit(ctx workflow.Context, actor, action, detail string) {
	in := AuditInput{AgentID: wf.policy.AgentID, Actor: cmp.Or(actor, "workflow"), Action: action, Detail: detail, At: workflow.Now(ctx)}
	_ = wf.local(ctx, la.Audit, in, nil)
}

// syncSearchAttributes upserts AgentId, CardStatus and Issuer when they differ from what the
// execution has, so continue-as-new and unchanged states add no events.
func (wf *agentCard) syncSearchAttributes(ctx workflow.Context) {
	sa := workflow.GetTypedSearchAttributes(ctx)
	var updates []temporal.SearchAttributeUpdate
	want := []struct {
		key   temporal.SearchAttributeKeyKeyword
		value string
	}{
		{AgentIDKey, wf.policy.AgentID},
		{CardStatusKey, string(wf.st.Status)},
		{IssuerKey, wf.policy.Issuer},
	}
	for _, w := range want {
		if v, ok := sa.GetKeyword(w.key); !ok || v != w.value {
			updates = append(updates, w.key.ValueSet(w.value))
		}
	}
	if len(updates) == 0 {
		return
	}
	wf.wrote(eventsPerUpsert)
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		wf.logger(ctx).Error("upsert search attributes", "error", err)
	}
}

// isRetryable reports whether an activity failure might succeed if tried again later.
func isRetryable(err error) bool {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return !appErr.NonRetryable()
	}
	return true
}

// errorType is the ApplicationError type of an activity failure, or "".
func errorType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

// activityType is the name of the activity an activity failure is of, or "".
func activityType(err error) string {
	var actErr *temporal.ActivityError
	if errors.As(err, &actErr) {
		return actErr.ActivityType().GetName()
	}
	return ""
}

// failureMessage is the innermost message of an activity failure, for alerts, update errors
// and the fleet rotation's result: "issuer create_card: invalid_request: …" rather than the
// wrapping chain.
func failureMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Error()
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		return fmt.Sprintf("timed out (%s)", timeoutErr.TimeoutType())
	}
	return err.Error()
}
