package worker

import (
	"context"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/workflows"
)

// A reset's local try (activities.UpdateLimitNow) is paced in its own process only, where the
// paced queue is also capped across processes by the server. Each process therefore takes an
// equal share of the pace, counting the processes that poll the issuer queue (each process runs
// one issuer worker, named by its identity).
const (
	// shareFirstCount is when a process first counts, once its own issuer worker has polled;
	// until then it paces as if alone.
	shareFirstCount = 5 * time.Second
	// shareRecount is how often it counts again; a process that joins takes this long to be
	// counted by the others.
	shareRecount = 30 * time.Second
	// pollerRecent is how recently a poller must have polled to count: the server lists pollers
	// for minutes after they stop, and a live one polls again within its long poll (a minute).
	pollerRecent = 70 * time.Second
)

// issuerProcesses counts the worker processes that polled the issuer queue recently: at
// least one (this one).
func issuerProcesses(ctx context.Context, c client.Client, now time.Time) (int, error) {
	resp, err := c.DescribeTaskQueue(ctx, workflows.IssuerTaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	for _, p := range resp.GetPollers() {
		if at := p.GetLastAccessTime(); at != nil && now.Sub(at.AsTime()) < pollerRecent {
			seen[p.GetIdentity()] = true
		}
	}
	return max(len(seen), 1), nil
}

// keepShare gives pacer its share among the processes polling the issuer queue, counting them
// again every shareRecount until ctx ends. A failed count keeps the last share.
func keepShare(ctx context.Context, c client.Client, pacer *activities.Pacer, log *slog.Logger) {
	wait := shareFirstCount
	last := 1
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = shareRecount
		n, err := issuerProcesses(ctx, c, time.Now())
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("could not count the worker processes sharing the issuer's rate limit; keeping the last share", "processes", last, "error", err)
			}
			continue
		}
		pacer.SetShare(n)
		if n != last {
			log.Info("worker processes sharing the issuer's rate limit", "processes", n, "calls_per_second", pacer.Rate())
			last = n
		}
	}
}
