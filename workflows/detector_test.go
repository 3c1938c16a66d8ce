package workflows

import (
	"testing"
	"time"
)

func anomaly(window time.Duration, maxDeclines int) AnomalyPolicy {
	a, _ := Policy{AgentID: "x", DailyLimitUSD: 1, Anomaly: AnomalyPolicy{Window: Duration(window), MaxDeclines: maxDeclines}}.Normalize()
	return a.Anomaly
}

func TestDetectorBurstWithinWindow(t *testing.T) {
	cfg := anomaly(time.Minute, 3)
	var d Detector
	t0 := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, want := range []Verdict{VerdictNone, VerdictNone, VerdictBurst} {
		if v, _ := d.Observe(cfg, t0.Add(time.Duration(i)*20*time.Second), "spending_limit"); v != want {
			t.Fatalf("decline %d: %v, want %v", i, v, want)
		}
	}
}

func TestDetectorSpreadOutDeclinesNeverBurst(t *testing.T) {
	cfg := anomaly(time.Minute, 3)
	var d Detector
	t0 := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 100 {
		if v, n := d.Observe(cfg, t0.Add(time.Duration(i)*31*time.Second), "spending_limit"); v != VerdictNone {
			t.Fatalf("decline %d: %v (window count %d)", i, v, n)
		}
	}
	if len(d.Marks) > 3 {
		t.Fatalf("window not pruned: %d marks", len(d.Marks))
	}
}

func TestDetectorUsesEventTimeNotArrivalOrder(t *testing.T) {
	cfg := anomaly(time.Minute, 3)
	var d Detector
	t0 := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	// Arrive out of order: 12:00:50, 12:00:00, then 12:00:30 completes a burst inside
	// [12:00:00, 12:01:00] although the arrivals straddle more than a minute of wall time.
	d.Observe(cfg, t0.Add(50*time.Second), "other")
	d.Observe(cfg, t0, "other")
	if v, n := d.Observe(cfg, t0.Add(30*time.Second), "other"); v != VerdictBurst || n != 3 {
		t.Fatalf("got %v %d", v, n)
	}
	// A late decline far outside every window does not burst.
	d.Reset()
	d.Observe(cfg, t0.Add(10*time.Minute), "other")
	d.Observe(cfg, t0.Add(10*time.Minute+time.Second), "other")
	if v, _ := d.Observe(cfg, t0, "other"); v != VerdictNone {
		t.Fatalf("stale decline burst: %v", v)
	}
}

func TestDetectorWeightsAndHardReasons(t *testing.T) {
	cfg := anomaly(time.Minute, 4)
	cfg.ReasonWeights["merchant_blocked"] = 2
	var d Detector
	t0 := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 10 {
		// Declines caused by our own pause weigh nothing.
		if v, _ := d.Observe(cfg, t0.Add(time.Duration(i)*time.Second), "card_paused"); v != VerdictNone {
			t.Fatalf("card_paused counted: %v", v)
		}
	}
	d.Observe(cfg, t0, "merchant_blocked")
	if v, n := d.Observe(cfg, t0.Add(time.Second), "merchant_blocked"); v != VerdictBurst || n != 4 {
		t.Fatalf("weighted: %v %d", v, n)
	}
	if v, _ := d.Observe(cfg, t0, "suspected_fraud"); v != VerdictHard {
		t.Fatalf("hard reason: %v", v)
	}
}
