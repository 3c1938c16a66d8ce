package issuer

import "context"

type idempotencyKeyCtx struct{}

// WithIdempotencyKey attaches a caller-chosen idempotency key to ctx for the mutating calls
// whose signature carries none (UpdateLimits, PauseCard, ResumeCard, CloseCard). Activities
// should pass one that is stable across retries of one activity and different for every new
// intent (for example workflow ID + activity ID): an issuer that remembers keys for 24 h would
// otherwise replay an old "pause" response for a new pause after a resume.
//
// Without it, adapters derive a key from the call's content and a short time bucket, which
// deduplicates quick retries and is harmless otherwise because those calls set absolute values.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKeyCtx{}, key)
}

// IdempotencyKeyFrom returns the key set by WithIdempotencyKey, if any.
func IdempotencyKeyFrom(ctx context.Context) (string, bool) {
	k, ok := ctx.Value(idempotencyKeyCtx{}).(string)
	return k, ok && k != ""
}
