// Package resilience attacks a running cardwarden: the worker killed with SIGKILL mid-issue,
// mid-rotation and mid-reset; the issuer failing 30% of calls behind a tight rate limit;
// Postgres restarted under load; Temporal stopped while webhooks arrive; and hostile webhooks
// posted to the real API. The tests build the cardwarden binary and link the Temporal server,
// so they are slow and run only with the resilience build tag:
//
//	go test -tags resilience -count=1 -timeout 30m ./test/resilience/
//
// (`make test-resilience`). docs/benchmarks.md ("Resilience tests") describes what each test checks.
package resilience
