package bench

import (
	"math"
	"slices"
	"sync"
	"time"
)

// percentile returns the nearest-rank percentile p (0..100) of xs; xs need not be sorted.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cdf turns samples into (value, cumulative fraction) points for a chart.
func cdf(xs []float64) [][2]float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	pts := make([][2]float64, len(s))
	for i, v := range s {
		pts[i] = [2]float64{v, float64(i+1) / float64(len(s))}
	}
	return pts
}

// timeline records (seconds since start, value) samples from several goroutines.
type timeline struct {
	mu     sync.Mutex
	start  time.Time
	points [][2]float64
}

func newTimeline(start time.Time) *timeline { return &timeline{start: start} }

func (t *timeline) add(at time.Time, v float64) {
	t.mu.Lock()
	t.points = append(t.points, [2]float64{at.Sub(t.start).Seconds(), v})
	t.mu.Unlock()
}

func (t *timeline) snapshot() [][2]float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.points)
}

// cumulative turns event times into a (seconds, count) step series, thinned to at most n points.
func cumulative(start time.Time, times []time.Time, n int) [][2]float64 {
	s := slices.Clone(times)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	step := max(1, len(s)/max(n, 1))
	var pts [][2]float64
	for i := 0; i < len(s); i += step {
		pts = append(pts, [2]float64{s[i].Sub(start).Seconds(), float64(i + 1)})
	}
	if len(s) > 0 {
		pts = append(pts, [2]float64{s[len(s)-1].Sub(start).Seconds(), float64(len(s))})
	}
	return pts
}
