package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
)

// keepAlive heartbeats for the running activity until the returned stop is called, when the
// workflow gave it a heartbeat timeout: a worker killed in the middle of the activity is then
// noticed after that timeout rather than after the whole start-to-close timeout, and the
// retry (with the same idempotency key, so the same card) comes at once.
func keepAlive(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	info := activity.GetInfo(ctx)
	if info.HeartbeatTimeout <= 0 || info.IsLocalActivity {
		return func() {}
	}
	every := max(info.HeartbeatTimeout/3, 100*time.Millisecond)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			activity.RecordHeartbeat(ctx)
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done) }
}
