package metrics

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
)

// Operation labels of issuer calls.
const (
	OpCreateCard         = "create_card"
	OpGetCard            = "get_card"
	OpRevealCard         = "reveal_card"
	OpUpdateLimits       = "update_limits"
	OpPauseCard          = "pause_card"
	OpResumeCard         = "resume_card"
	OpCloseCard          = "close_card"
	OpListAuthorizations = "list_authorizations"
)

// CallObserver is told the outcome of every issuer API call (not of webhook verification,
// which is local). alerts.IssuerWatch.Observe is one.
type CallObserver func(issuerName string, err error)

// InstrumentIssuer wraps an adapter so every call is timed and counted, cards created and
// closed are counted, webhook verification failures are counted, and observers (the
// issuer-unreachable watch) see each call's outcome. The wrapper changes nothing else: same
// name, capabilities, results and errors.
func InstrumentIssuer(iss issuer.Issuer, m *Metrics, observers ...CallObserver) issuer.Issuer {
	in := &instrumented{next: iss, m: m, observers: observers}
	if d, ok := iss.(issuer.Decider); ok {
		// An adapter that decides purchases in real time stays one: the API finds the
		// decision endpoint's issuers by this interface.
		return &instrumentedDecider{instrumented: in, Decider: d}
	}
	return in
}

// instrumentedDecider is an instrumented adapter that is also an issuer.Decider.
type instrumentedDecider struct {
	*instrumented
	issuer.Decider
}

// InstrumentRegistry returns a registry of the instrumented adapters of r.
func InstrumentRegistry(r *issuer.Registry, m *Metrics, observers ...CallObserver) (*issuer.Registry, error) {
	var out []issuer.Issuer
	for _, name := range r.Names() {
		iss, err := r.Get(name)
		if err != nil {
			return nil, err
		}
		out = append(out, InstrumentIssuer(iss, m, observers...))
	}
	return issuer.NewRegistry(out...), nil
}

type instrumented struct {
	next      issuer.Issuer
	m         *Metrics
	observers []CallObserver
}

var _ issuer.Issuer = (*instrumented)(nil)

// Unwrap returns the adapter underneath.
func (i *instrumented) Unwrap() issuer.Issuer { return i.next }

func (i *instrumented) Name() string                      { return i.next.Name() }
func (i *instrumented) Capabilities() issuer.Capabilities { return i.next.Capabilities() }

// observe records one call.
func (i *instrumented) observe(op string, start time.Time, err error) {
	name := i.next.Name()
	outcome := "ok"
	if err != nil {
		outcome = "error"
		i.m.issuerErrors.WithLabelValues(name, op, ErrorKind(err)).Inc()
	} else {
		i.m.issuerLastOK.WithLabelValues(name).SetToCurrentTime()
	}
	i.m.issuerDuration.WithLabelValues(name, op, outcome).Observe(time.Since(start).Seconds())
	for _, o := range i.observers {
		o(name, err)
	}
}

// ErrorKind is the errors-total label of an issuer call's error: the issuer.ErrorKind of a
// typed error, or timeout, canceled or network.
func ErrorKind(err error) string {
	var e *issuer.Error
	switch {
	case errors.As(err, &e):
		return string(e.Kind)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "network"
	}
}

func (i *instrumented) CreateCard(ctx context.Context, req issuer.CreateCardRequest) (issuer.Card, error) {
	start := time.Now()
	c, err := i.next.CreateCard(ctx, req)
	i.observe(OpCreateCard, start, err)
	if err == nil && i.m.recentlyIssued.add(i.next.Name()+"/"+c.ID) {
		i.m.cardsIssued.WithLabelValues(i.next.Name()).Inc()
	}
	return c, err
}

func (i *instrumented) GetCard(ctx context.Context, cardID string) (issuer.Card, error) {
	start := time.Now()
	c, err := i.next.GetCard(ctx, cardID)
	i.observe(OpGetCard, start, err)
	return c, err
}

func (i *instrumented) RevealCard(ctx context.Context, cardID string) (issuer.Secrets, error) {
	start := time.Now()
	s, err := i.next.RevealCard(ctx, cardID)
	i.observe(OpRevealCard, start, err)
	return s, err
}

func (i *instrumented) UpdateLimits(ctx context.Context, cardID string, limits []issuer.SpendLimit) (issuer.Card, error) {
	start := time.Now()
	c, err := i.next.UpdateLimits(ctx, cardID, limits)
	i.observe(OpUpdateLimits, start, err)
	return c, err
}

func (i *instrumented) PauseCard(ctx context.Context, cardID string) (issuer.Card, error) {
	start := time.Now()
	c, err := i.next.PauseCard(ctx, cardID)
	i.observe(OpPauseCard, start, err)
	return c, err
}

func (i *instrumented) ResumeCard(ctx context.Context, cardID string) (issuer.Card, error) {
	start := time.Now()
	c, err := i.next.ResumeCard(ctx, cardID)
	i.observe(OpResumeCard, start, err)
	return c, err
}

func (i *instrumented) CloseCard(ctx context.Context, cardID string) (issuer.Card, error) {
	start := time.Now()
	c, err := i.next.CloseCard(ctx, cardID)
	i.observe(OpCloseCard, start, err)
	// Closing a closed card answers ErrAlreadyClosed: it was counted when it was closed.
	if err == nil {
		i.m.cardsClosed.WithLabelValues(i.next.Name()).Inc()
	}
	return c, err
}

func (i *instrumented) ListAuthorizations(ctx context.Context, cardID string, since time.Time) ([]cardwarden.Event, error) {
	start := time.Now()
	es, err := i.next.ListAuthorizations(ctx, cardID, since)
	i.observe(OpListAuthorizations, start, err)
	return es, err
}

// VerifyWebhook is local work, not an issuer call: it is not timed, and its failures count as
// webhook verification failures only.
func (i *instrumented) VerifyWebhook(header http.Header, body []byte, now time.Time) ([]cardwarden.Event, error) {
	es, err := i.next.VerifyWebhook(header, body, now)
	if err != nil {
		reason := WebhookInvalid
		if errors.Is(err, issuer.ErrUnauthorized) {
			reason = WebhookSignature
		}
		i.m.webhookFailures.WithLabelValues(i.next.Name(), reason).Inc()
	}
	return es, err
}
