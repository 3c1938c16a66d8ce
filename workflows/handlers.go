package workflows

import (
	"cmp"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// command is an accepted update waiting for the main loop. Updates do not act themselves:
// the main loop is the only code that calls activities or changes state, so a reset, a
// signal and an update can never interleave halfway through each other.
type command struct {
	check func() error                 // the update's validator, checked again when it runs
	run   func(workflow.Context) error // what the update does

	done bool
	view StateView
	err  error
}

func invalidRequest(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidRequest, nil)
}

func invalidRequestf(format string, args ...any) error {
	return invalidRequest(fmt.Errorf(format, args...))
}

// notApplied fails an update whose change the issuer did not take: nothing was changed.
func notApplied(format string, err error) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, failureMessage(err)), ErrTypeNotApplied, nil)
}

// registerHandlers installs the query, the updates with their validators and the signal
// channel. It runs before the workflow's first blocking call, so nothing sent early is lost.
func (wf *agentCard) registerHandlers(ctx workflow.Context) error {
	// The channels first: an update that arrived with the run's first task is delivered as
	// soon as its handler is registered, and its handler sends on cmdCh.
	wf.eventCh = workflow.GetSignalChannelWithOptions(ctx, SignalCardEvent, workflow.SignalChannelOptions{
		Description: "An issuer event (cardwarden.Event), or a JSON array of them in order, for this agent's card. The webhook path records it in the ledger first; " +
			"one sent here by hand is recorded in the ledger by the workflow. Counted once per event id."})
	wf.cmdCh = workflow.NewBufferedChannel(ctx, 64)
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryState, func() (StateView, error) {
		return View(wf.policy, wf.st), nil
	}, workflow.QueryHandlerOptions{Description: "The agent's live state: policy, card, status, today's spend and budget, counters."}); err != nil {
		return fmt.Errorf("register query %s: %w", QueryState, err)
	}
	reasonUpdates := []struct {
		name  string
		check func() error
		run   func(workflow.Context, ReasonRequest) error
		desc  string
	}{
		{UpdateRotate, wf.canRotate, wf.manualRotate, `Issue a new card and close the old one after the grace period. Input {"reason": "…"}; returns the state.`},
		{UpdateFreeze, wf.canFreeze, wf.humanFreeze, `Freeze the card at the issuer (purchases declined). Input {"reason": "…"}; returns the state.`},
		{UpdateUnfreeze, wf.canUnfreeze, wf.unfreeze, `Unfreeze the card (a revoked one is replaced). Input {"reason": "…"}; returns the state.`},
		{UpdateRetire, wf.notRetired, wf.humanRetire, `Close the card for good and end the agent. Input {"reason": "…"}; returns the state.`},
	}
	for _, u := range reasonUpdates {
		check, run := u.check, u.run
		err := workflow.SetUpdateHandlerWithOptions(ctx, u.name,
			func(ctx workflow.Context, req ReasonRequest) (StateView, error) {
				return wf.submit(ctx, &command{check: check, run: func(ctx workflow.Context) error { return run(ctx, req) }})
			},
			workflow.UpdateHandlerOptions{Description: u.desc, Validator: func(_ workflow.Context, req ReasonRequest) error {
				if err := req.Validate(); err != nil {
					return invalidRequest(err)
				}
				return check()
			}},
		)
		if err != nil {
			return fmt.Errorf("register update %s: %w", u.name, err)
		}
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateSetBudget,
		func(ctx workflow.Context, req BudgetRequest) (StateView, error) {
			return wf.submit(ctx, &command{check: wf.notRetired, run: func(ctx workflow.Context) error { return wf.setBudget(ctx, req) }})
		},
		workflow.UpdateHandlerOptions{Description: `Change the daily (and monthly) limit, at the issuer too. ` +
			`Input {"daily_limit_usd": "…", "monthly_limit_usd": "…", "reason": "…"}; returns the state.`,
			Validator: func(_ workflow.Context, req BudgetRequest) error {
				if err := req.Validate(); err != nil {
					return invalidRequest(err)
				}
				return wf.notRetired()
			}},
	)
	if err != nil {
		return fmt.Errorf("register update %s: %w", UpdateSetBudget, err)
	}
	// authorize decides at once, in its handler: it only reads and changes state, and a
	// purchase cannot wait for the main loop to finish an issuer call.
	err = workflow.SetUpdateHandlerWithOptions(ctx, UpdateAuthorize,
		func(ctx workflow.Context, req AuthorizeRequest) (AuthorizeResult, error) {
			return wf.authorize(ctx, req), nil
		},
		workflow.UpdateHandlerOptions{Description: "Decide one purchase now (merchant rules, per-purchase maximum, velocity, budget, team) " +
			"and reserve it if approved. Sent by POST /v1/authorizations/{issuer} while the issuer waits; the same authorization id gets the same answer.",
			Validator: func(_ workflow.Context, req AuthorizeRequest) error {
				if err := req.Validate(); err != nil {
					return invalidRequest(err)
				}
				return nil
			}},
	)
	if err != nil {
		return fmt.Errorf("register update %s: %w", UpdateAuthorize, err)
	}
	return nil
}

// submit hands an accepted update to the main loop and waits for its outcome.
func (wf *agentCard) submit(ctx workflow.Context, c *command) (StateView, error) {
	wf.wrote(eventsPerUpdate + eventsPerWake)
	wf.cmdCh.Send(ctx, c)
	if err := workflow.Await(ctx, func() bool { return c.done }); err != nil {
		return StateView{}, err
	}
	return c.view, c.err
}

// Validators. They read state and never change it; the main loop checks again when it runs
// the command, because another update may have changed the state in between.

func (wf *agentCard) notRetired() error {
	if wf.st.Status == StatusRetired || wf.retiring {
		return invalidRequestf("agent %s is retired", wf.policy.AgentID)
	}
	return nil
}

func (wf *agentCard) canRotate() error { return wf.notRetired() }

func (wf *agentCard) canFreeze() error {
	if err := wf.notRetired(); err != nil {
		return err
	}
	switch {
	case wf.st.Status == StatusFrozen:
		return invalidRequestf("card is already frozen")
	case wf.st.Status == StatusRevoked:
		return invalidRequestf("card is revoked; unfreeze or rotate to issue a new one")
	case wf.st.Card == nil:
		return invalidRequestf("there is no card to freeze yet (issue pending)")
	}
	return nil
}

func (wf *agentCard) canUnfreeze() error {
	if err := wf.notRetired(); err != nil {
		return err
	}
	if wf.st.Status == StatusActive {
		return invalidRequestf("card is not frozen")
	}
	return nil
}

// execute runs an accepted update in the main loop, if it is still allowed.
func (c *command) execute(ctx workflow.Context, wf *agentCard) {
	defer func() {
		c.view = View(wf.policy, wf.st)
		c.done = true
	}()
	if c.err = c.check(); c.err == nil {
		c.err = c.run(ctx)
	}
}

// humanFreeze is the freeze update: a freeze with no burst behind it.
func (wf *agentCard) humanFreeze(ctx workflow.Context, req ReasonRequest) error {
	return wf.freeze(ctx, cmp.Or(req.Reason, "frozen by "+actorOr(req.Actor)), req.Actor, time.Time{})
}

// humanRetire is the retire update.
func (wf *agentCard) humanRetire(ctx workflow.Context, req ReasonRequest) error {
	wf.retire(ctx, cmp.Or(req.Reason, "retired by "+actorOr(req.Actor)), req.Actor)
	return nil
}

// actorOr names who asked for an update in the audit log: the request's actor, or "update".
func actorOr(actor string) string { return cmp.Or(actor, "update") }
