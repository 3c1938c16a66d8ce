package workflows

import (
	"time"

	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// command is an accepted update waiting for the main loop. Updates do not act themselves:
// the main loop is the only code that calls activities or changes state, so a reset, a
// signal and an update can never interleave halfway through each other.
type command struct {
	name   string
	reason ReasonRequest
	budget BudgetRequest

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
	wf.eventCh = workflow.GetSignalChannel(ctx, SignalCardEvent)
	wf.cmdCh = workflow.NewBufferedChannel(ctx, 64)
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (StateView, error) {
		return View(wf.policy, wf.st), nil
	}); err != nil {
		return fmt.Errorf("register query %s: %w", QueryState, err)
	}
	reasonUpdates := []struct {
		name  string
		check func() error
	}{
		{UpdateRotate, wf.canRotate},
		{UpdateFreeze, wf.canFreeze},
		{UpdateUnfreeze, wf.canUnfreeze},
		{UpdateRetire, wf.notRetired},
	}
	for _, u := range reasonUpdates {
		name, check := u.name, u.check
		err := workflow.SetUpdateHandlerWithOptions(ctx, name,
			func(ctx workflow.Context, req ReasonRequest) (StateView, error) {
				return wf.submit(ctx, &command{name: name, reason: req})
			},
			workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, req ReasonRequest) error {
				if err := req.Validate(); err != nil {
					return invalidRequest(err)
				}
				return check()
			}},
		)
		if err != nil {
			return fmt.Errorf("register update %s: %w", name, err)
		}
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateSetBudget,
		func(ctx workflow.Context, req BudgetRequest) (StateView, error) {
			return wf.submit(ctx, &command{name: UpdateSetBudget, budget: req})
		},
		workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, req BudgetRequest) error {
			if err := req.Validate(); err != nil {
				return invalidRequest(err)
			}
			return wf.notRetired()
		}},
	)
	if err != nil {
		return fmt.Errorf("register update %s: %w", UpdateSetBudget, err)
	}
	return nil
}

// submit hands an accepted update to the main loop and waits for its outcome.
func (wf *agentCard) submit(ctx workflow.Context, c *command) (StateView, error) {
	wf.est += eventsPerUpdate + eventsPerWake
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

// execute runs an accepted update in the main loop.
func (wf *agentCard) execute(ctx workflow.Context, c *command) {
	defer func() {
		c.view = View(wf.policy, wf.st)
		c.done = true
	}()
	actor := c.reason.Actor
	switch c.name {
	case UpdateRotate:
		if c.err = wf.canRotate(); c.err == nil {
			c.err = wf.manualRotate(ctx, c.reason)
		}
	case UpdateFreeze:
		if c.err = wf.canFreeze(); c.err == nil {
			c.err = wf.freeze(ctx, reasonOr(c.reason.Reason, "frozen by "+actorOr(actor)), actor, time.Time{})
		}
	case UpdateUnfreeze:
		if c.err = wf.canUnfreeze(); c.err == nil {
			c.err = wf.unfreeze(ctx, c.reason)
		}
	case UpdateSetBudget:
		if c.err = wf.notRetired(); c.err == nil {
			c.err = wf.setBudget(ctx, c.budget)
		}
	case UpdateRetire:
		if c.err = wf.notRetired(); c.err == nil {
			wf.retire(ctx, reasonOr(c.reason.Reason, "retired by "+actorOr(actor)), actor)
		}
	default:
		c.err = invalidRequestf("unknown update %q", c.name)
	}
}

func reasonOr(reason, def string) string {
	if reason == "" {
		return def
	}
	return reason
}

func actorOr(actor string) string {
	if actor == "" {
		return "update"
	}
	return actor
}
