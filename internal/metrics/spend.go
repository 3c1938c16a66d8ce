package metrics

import (
	"context"
	"encoding/json"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows/tzdb"
)

// FleetSpend is what the fleet's agents spent today, each on its own day (its policy's time
// zone), and the daily limits they spend against. Retired agents are left out.
type FleetSpend struct {
	SpentMinor, OverspendMinor, DailyLimitMinor int64
}

// SpendSource is what StoreFleetSpend reads: *store.Store.
type SpendSource interface {
	ListAgents(ctx context.Context) ([]store.Agent, error)
	SpendSince(ctx context.Context, fromDay string) ([]store.DailySpend, error)
}

// StoreFleetSpend sums today's spend from the ledger's daily spend (the same numbers the
// dashboard shows), at scrape time: two queries whatever the fleet's size.
func StoreFleetSpend(src SpendSource, now func() time.Time) func(ctx context.Context) (FleetSpend, error) {
	if now == nil {
		now = time.Now
	}
	return func(ctx context.Context) (FleetSpend, error) {
		var fs FleetSpend
		agents, err := src.ListAgents(ctx)
		if err != nil {
			return fs, err
		}
		t := now()
		// Every zone's today is on or after UTC's yesterday.
		rows, err := src.SpendSince(ctx, t.UTC().AddDate(0, 0, -1).Format(time.DateOnly))
		if err != nil {
			return fs, err
		}
		byAgentDay := map[[2]string]store.DailySpend{}
		for _, r := range rows {
			byAgentDay[[2]string{r.AgentID, r.Day}] = r
		}
		for _, a := range agents {
			if a.Status == "retired" {
				continue
			}
			var p struct {
				Timezone      string       `json:"timezone"`
				DailyLimitUSD money.Amount `json:"daily_limit_usd"`
			}
			_ = json.Unmarshal([]byte(a.Policy), &p)
			loc, err := tzdb.LoadLocation(p.Timezone)
			if err != nil || p.Timezone == "" {
				loc = time.UTC
			}
			r := byAgentDay[[2]string{a.AgentID, t.In(loc).Format(time.DateOnly)}]
			fs.SpentMinor += r.SpentMinor
			fs.OverspendMinor += r.OverspendMinor
			fs.DailyLimitMinor += p.DailyLimitUSD.Minor()
		}
		return fs, nil
	}
}

// spendCollector reports FleetSpend at scrape time.
type spendCollector struct {
	read                       func(ctx context.Context) (FleetSpend, error)
	timeout                    time.Duration
	spent, overspend, dailyCap *prometheus.Desc
}

func newSpendCollector(read func(ctx context.Context) (FleetSpend, error), timeout time.Duration) *spendCollector {
	labels := []string{"currency"}
	return &spendCollector{read: read, timeout: timeout,
		spent: prometheus.NewDesc(Namespace+"_spend_today_usd",
			"What the fleet's agents spent today (approvals, over-captures and force-posts, less their own day's reversals), each agent on its own day; from the ledger, in dollars.", labels, nil),
		overspend: prometheus.NewDesc(Namespace+"_overspend_today_usd",
			"The part of today's spend no issuer could refuse (over-captures, force-posts), in dollars.", labels, nil),
		dailyCap: prometheus.NewDesc(Namespace+"_daily_limit_usd",
			"The sum of the daily limits of the agents that are not retired, in dollars: what the fleet may spend today.", labels, nil),
	}
}

func (c *spendCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.spent
	ch <- c.overspend
	ch <- c.dailyCap
}

func (c *spendCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	fs, err := c.read(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.spent, err)
		return
	}
	dollars := func(minor int64) float64 { return float64(minor) / 100 }
	ch <- prometheus.MustNewConstMetric(c.spent, prometheus.GaugeValue, dollars(fs.SpentMinor), "USD")
	ch <- prometheus.MustNewConstMetric(c.overspend, prometheus.GaugeValue, dollars(fs.OverspendMinor), "USD")
	ch <- prometheus.MustNewConstMetric(c.dailyCap, prometheus.GaugeValue, dollars(fs.DailyLimitMinor), "USD")
}

// Preset makes the counters exist, at 0, from the start, for the configured issuers and alert
// sinks: a series that appears only with its first event cannot be rated or alerted on
// before then (increase() of a new series misses its first increment).
func (m *Metrics) Preset(issuers, sinks []string) {
	for _, iss := range issuers {
		m.cardsIssued.WithLabelValues(iss)
		m.cardsClosed.WithLabelValues(iss)
		m.events.WithLabelValues(iss, "authorization", "approved", "")
		m.events.WithLabelValues(iss, "authorization", "declined", "spending_limit")
		m.webhookFailures.WithLabelValues(iss, WebhookSignature)
		m.issuerErrors.WithLabelValues(iss, "create_card", "transient")
		m.decisions.total.WithLabelValues(iss, "declined", "decision_timeout", DecisionByFallback)
	}
	for _, reason := range []string{DeferredQueueFull, DeferredTemporalUnreachable, DeferredFailed} {
		m.deferred.WithLabelValues(reason)
	}
	for _, sink := range sinks {
		m.alerts.WithLabelValues(sink, "frozen", "delivered")
		m.alerts.WithLabelValues(sink, "frozen", "failed")
	}
}
