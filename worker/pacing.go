package worker

import (
	"context"

	"go.temporal.io/sdk/interceptor"

	"github.com/cardwarden/cardwarden/activities"
)

// pacedQueue counts every activity the issuer queue's worker runs against the process's Pacer,
// so a reset's local try (UpdateLimitNow) only calls the issuer with room the paced queue left.
type pacedQueue struct {
	interceptor.WorkerInterceptorBase
	pacer *activities.Pacer
}

func (q *pacedQueue) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	a := &pacedActivity{pacer: q.pacer}
	a.Next = next
	return a
}

type pacedActivity struct {
	interceptor.ActivityInboundInterceptorBase
	pacer *activities.Pacer
}

func (a *pacedActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	a.pacer.Took()
	return a.Next.ExecuteActivity(ctx, in)
}
