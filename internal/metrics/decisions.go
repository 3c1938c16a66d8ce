package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Real-time decisions: how many, which way, why, and how long the issuer waited.

type decisionSeries struct {
	total   *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

func newDecisionSeries() decisionSeries {
	return decisionSeries{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "decisions_total",
			Help: "Real-time authorization decisions by issuer, outcome (approved|declined), reason and source " +
				"(workflow|fallback|replay: a redelivered request answered from the record|refused: a card no agent owns)."},
			[]string{"issuer", "outcome", "reason", "source"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "decision_latency_seconds",
			Help:    "Time from an authorization request's arrival to its answer, by issuer and source.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3}}, []string{"issuer", "source"}),
	}
}

// Decision sources (the source label).
const (
	DecisionByWorkflow = "workflow"
	DecisionByFallback = "fallback"
	DecisionReplayed   = "replay"
	DecisionRefused    = "refused"
)

// ObserveDecision counts one answered authorization request. The reason is one of the
// workflow's fixed reasons (workflows.Decide*), never caller text.
func (m *Metrics) ObserveDecision(issuerName string, approved bool, reason, source string, took time.Duration) {
	outcome := "declined"
	if approved {
		outcome = "approved"
	}
	m.decisions.total.WithLabelValues(safeLabel(issuerName), outcome, safeLabel(reason), source).Inc()
	m.decisions.latency.WithLabelValues(safeLabel(issuerName), source).Observe(took.Seconds())
}
