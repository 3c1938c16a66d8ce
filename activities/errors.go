package activities

import (
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/workflows"
)

// issuerError maps an issuer failure to the Temporal error that makes retries do the right
// thing: a request the issuer rejected (invalid, not found, closed, unauthorized, not
// supported, idempotency conflict) fails at once; a 429 retries after the issuer's
// Retry-After; anything else retries with the activity's backoff. Messages carry the issuer's
// message, which never holds card data.
func issuerError(op string, err error) error {
	if err == nil {
		return nil
	}
	msg := op + ": " + err.Error()
	var ie *issuer.Error
	if !errors.As(err, &ie) {
		// Network failures, deadlines: worth another try.
		return temporal.NewApplicationError(msg, workflows.ErrTypeIssuerTransient)
	}
	typ := workflows.IssuerErrorType(ie.Kind)
	switch ie.Kind {
	case issuer.KindRateLimited:
		return temporal.NewApplicationErrorWithOptions(msg, typ, temporal.ApplicationErrorOptions{NextRetryDelay: ie.RetryAfter})
	case issuer.KindTransient:
		return temporal.NewApplicationError(msg, typ)
	default:
		return temporal.NewNonRetryableApplicationError(msg, typ, nil)
	}
}
