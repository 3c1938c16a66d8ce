package metrics

import (
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// TemporalHandler returns the Temporal SDK metrics handler (client.Options.MetricsHandler)
// that exports the SDK's worker and client metrics — task latencies, poller counts, slot usage,
// request failures, sticky cache — into this registry. Counters end in "_total", timers become
// "_seconds" histograms, the naming the SDK's own Prometheus examples use, so Temporal's
// published dashboards work.
//
// It is a small adapter rather than go.temporal.io/sdk/contrib/tally: that is a separate
// module whose releases track newer SDKs than the one pinned here, and tally's Prometheus
// reporter wants fixed label sets, while the SDK tags one metric name with different tag sets
// (a worker's metrics carry worker_type, a client's do not). This collector reconciles them at
// scrape time by giving every series of a name the union of its label names.
func (m *Metrics) TemporalHandler() client.MetricsHandler {
	return sdkHandler{c: m.temporal}
}

// timerBuckets cover the SDK's latencies, from sub-millisecond local activities to long polls.
var timerBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

type sdkKind int

const (
	sdkCounter sdkKind = iota
	sdkGauge
	sdkTimer
)

type sdkCollector struct {
	mu       sync.RWMutex
	families map[string]*sdkFamily

	// handlers interns tagged handlers by their tag set: the SDK tags a handler for every
	// workflow it caches, with the same few tags (type, queue, namespace), and keeps it for the
	// workflow's life, so one shared handler per tag set instead of one per workflow is memory
	// every idle agent saves. Bounded, in case a caller tags with unbounded values.
	hmu      sync.RWMutex
	handlers map[string]sdkHandler
}

// maxInternedHandlers bounds sdkCollector.handlers; tag sets beyond it are not shared.
const maxInternedHandlers = 4096

type sdkFamily struct {
	name   string
	kind   sdkKind
	mu     sync.RWMutex
	series map[string]*sdkSeries
}

type sdkSeries struct {
	labels map[string]string

	count atomic.Int64  // counter
	bits  atomic.Uint64 // gauge, math.Float64bits

	hmu     sync.Mutex // timer
	buckets []uint64
	sum     float64
	n       uint64
}

func newSDKCollector() *sdkCollector {
	return &sdkCollector{families: map[string]*sdkFamily{}, handlers: map[string]sdkHandler{}}
}

// intern returns the shared handler for h's tag set, keeping h as that handler if it is the first.
func (c *sdkCollector) intern(h sdkHandler) sdkHandler {
	c.hmu.RLock()
	shared, ok := c.handlers[h.key]
	c.hmu.RUnlock()
	if ok {
		return shared
	}
	c.hmu.Lock()
	defer c.hmu.Unlock()
	if shared, ok := c.handlers[h.key]; ok {
		return shared
	}
	if len(c.handlers) < maxInternedHandlers {
		c.handlers[h.key] = h
	}
	return h
}

// Describe sends nothing: the SDK's metric names are only known once it emits them, which makes
// this an "unchecked" collector. Its names all start with temporal_, so they cannot clash
// with cardwarden's.
func (c *sdkCollector) Describe(chan<- *prometheus.Desc) {}

func (c *sdkCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	fams := make([]*sdkFamily, 0, len(c.families))
	for _, f := range c.families {
		fams = append(fams, f)
	}
	c.mu.RUnlock()
	for _, f := range fams {
		f.collect(ch)
	}
}

func (f *sdkFamily) collect(ch chan<- prometheus.Metric) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	keySet := map[string]bool{}
	for _, s := range f.series {
		for k := range s.labels {
			keySet[k] = true
		}
	}
	keys := make([]string, 0, len(keySet))
	for k := range keySet {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	desc := prometheus.NewDesc(f.name, "Temporal SDK metric "+f.name+".", keys, nil)
	for _, s := range f.series {
		vals := make([]string, len(keys))
		for i, k := range keys {
			vals[i] = s.labels[k]
		}
		var m prometheus.Metric
		var err error
		switch f.kind {
		case sdkCounter:
			m, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, float64(s.count.Load()), vals...)
		case sdkGauge:
			m, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, math.Float64frombits(s.bits.Load()), vals...)
		case sdkTimer:
			s.hmu.Lock()
			cum := make(map[float64]uint64, len(timerBuckets))
			var acc uint64
			for i, ub := range timerBuckets {
				acc += s.buckets[i]
				cum[ub] = acc
			}
			n, sum := s.n, s.sum
			s.hmu.Unlock()
			m, err = prometheus.NewConstHistogram(desc, n, sum, cum, vals...)
		}
		if err != nil {
			m = prometheus.NewInvalidMetric(desc, err)
		}
		ch <- m
	}
}

// family returns the family of a Prometheus name, creating it. A name seen with another kind
// (never done by the SDK) gets its own family under a kind suffix rather than a broken scrape.
func (c *sdkCollector) family(name string, kind sdkKind) *sdkFamily {
	c.mu.RLock()
	f := c.families[name]
	c.mu.RUnlock()
	if f != nil && f.kind == kind {
		return f
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f = c.families[name]; f == nil {
		f = &sdkFamily{name: name, kind: kind, series: map[string]*sdkSeries{}}
		c.families[name] = f
	}
	if f.kind != kind {
		return c.familyLocked(name+"_"+[...]string{"count", "gauge", "timer"}[kind], kind)
	}
	return f
}

func (c *sdkCollector) familyLocked(name string, kind sdkKind) *sdkFamily {
	f := c.families[name]
	if f == nil {
		f = &sdkFamily{name: name, kind: kind, series: map[string]*sdkSeries{}}
		c.families[name] = f
	}
	return f
}

func (f *sdkFamily) get(key string, labels map[string]string) *sdkSeries {
	f.mu.RLock()
	s := f.series[key]
	f.mu.RUnlock()
	if s != nil {
		return s
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s = f.series[key]; s == nil {
		s = &sdkSeries{labels: labels}
		if f.kind == sdkTimer {
			s.buckets = make([]uint64, len(timerBuckets))
		}
		f.series[key] = s
	}
	return s
}

func (s *sdkSeries) Inc(d int64)      { s.count.Add(d) }
func (s *sdkSeries) Update(v float64) { s.bits.Store(math.Float64bits(v)) }
func (s *sdkSeries) Record(d time.Duration) {
	v := d.Seconds()
	s.hmu.Lock()
	defer s.hmu.Unlock()
	s.n++
	s.sum += v
	for i, ub := range timerBuckets {
		if v <= ub {
			s.buckets[i]++
			break
		}
	}
}

// sdkHandler is a client.MetricsHandler with a fixed tag set.
type sdkHandler struct {
	c    *sdkCollector
	tags map[string]string // sanitized label names
	key  string            // canonical form of tags
}

func (h sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	for k, v := range h.tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[sanitize(k)] = v
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(merged[k])
		b.WriteByte(0)
	}
	return h.c.intern(sdkHandler{c: h.c, tags: merged, key: b.String()})
}

func (h sdkHandler) Counter(name string) client.MetricsCounter {
	n := sanitize(name)
	if !strings.HasSuffix(n, "_total") { // temporal_local_activity_total is already a total
		n += "_total"
	}
	return h.c.family(n, sdkCounter).get(h.key, h.tags)
}

func (h sdkHandler) Gauge(name string) client.MetricsGauge {
	return h.c.family(sanitize(name), sdkGauge).get(h.key, h.tags)
}

func (h sdkHandler) Timer(name string) client.MetricsTimer {
	return h.c.family(sanitize(name)+"_seconds", sdkTimer).get(h.key, h.tags)
}

// sanitize turns an SDK name or tag into a valid Prometheus name.
func sanitize(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_', r >= '0' && r <= '9' && i > 0:
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
