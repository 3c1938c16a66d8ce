package bench

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Hand-written SVG: a line chart and a grouped bar chart, enough to show cardwarden beside its
// floor without a plotting dependency.

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"}

const (
	chartW, chartH         = 760, 420
	padL, padR, padT, padB = 70, 20, 50, 60
)

type svgDoc struct{ b strings.Builder }

func (d *svgDoc) printf(format string, args ...any) { fmt.Fprintf(&d.b, format, args...) }

func (d *svgDoc) text(x, y float64, anchor, size, s string, extra ...string) {
	d.printf(`<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%s" %s>%s</text>`+"\n", x, y, anchor, size, strings.Join(extra, " "), html.EscapeString(s))
}

func header(d *svgDoc, title, subtitle string) {
	d.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif">`+"\n", chartW, chartH, chartW, chartH)
	d.printf(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	d.text(chartW/2, 22, "middle", "16", title, `font-weight="bold"`)
	if subtitle != "" {
		d.text(chartW/2, 40, "middle", "11", subtitle, `fill="#555"`)
	}
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func axisLabel(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1000:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// lineChart draws series as polylines over shared axes. hlines are dashed reference lines
// (label, y value).
func lineChart(title, subtitle, xLabel, yLabel string, series []Series, hlines map[string]float64) string {
	var d svgDoc
	header(&d, title, subtitle)
	maxX, maxY := 0.0, 0.0
	for _, s := range series {
		for _, p := range s.Points {
			maxX, maxY = math.Max(maxX, p[0]), math.Max(maxY, p[1])
		}
	}
	for _, v := range hlines {
		maxY = math.Max(maxY, v)
	}
	maxX, maxY = niceMax(maxX), niceMax(maxY*1.05)
	pw, ph := float64(chartW-padL-padR), float64(chartH-padT-padB)
	px := func(x float64) float64 { return padL + x/maxX*pw }
	py := func(y float64) float64 { return padT + ph - y/maxY*ph }
	axes(&d, maxX, maxY, xLabel, yLabel, px, py)
	i := 0
	for label, v := range hlines {
		d.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="6 4"/>`+"\n", px(0), py(v), px(maxX), py(v))
		d.text(px(maxX)-4, py(v)-4-float64(i)*12, "end", "11", label, `fill="#555"`)
		i++
	}
	for i, s := range series {
		if len(s.Points) == 0 {
			continue
		}
		var pts []string
		for _, p := range s.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
		}
		color := palette[i%len(palette)]
		d.printf(`<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.Join(pts, " "))
		legend(&d, i, color, s.Name)
	}
	d.printf("</svg>\n")
	return d.b.String()
}

// barChart draws groups of bars: one group per category, one bar per series (values[i] is
// series i's value per category).
func barChart(title, subtitle, yLabel string, categories []string, seriesNames []string, values [][]float64) string {
	var d svgDoc
	header(&d, title, subtitle)
	maxY := 0.0
	for _, vs := range values {
		for _, v := range vs {
			if !math.IsNaN(v) {
				maxY = math.Max(maxY, v)
			}
		}
	}
	maxY = niceMax(maxY * 1.1)
	pw, ph := float64(chartW-padL-padR), float64(chartH-padT-padB)
	py := func(y float64) float64 { return padT + ph - y/maxY*ph }
	axes(&d, 0, maxY, "", yLabel, nil, py)
	groupW := pw / float64(max(len(categories), 1))
	barW := groupW * 0.7 / float64(max(len(seriesNames), 1))
	for ci, cat := range categories {
		gx := padL + float64(ci)*groupW + groupW*0.15
		for si := range seriesNames {
			if ci >= len(values[si]) {
				continue
			}
			v := values[si][ci]
			if math.IsNaN(v) {
				continue
			}
			x := gx + float64(si)*barW
			d.printf(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, py(v), barW-2, py(0)-py(v), palette[si%len(palette)])
			d.text(x+barW/2-1, py(v)-3, "middle", "10", fmtNum(v))
		}
		d.text(gx+groupW*0.35, float64(chartH-padB)+16, "middle", "12", cat)
	}
	for si, n := range seriesNames {
		legend(&d, si, palette[si%len(palette)], n)
	}
	d.printf("</svg>\n")
	return d.b.String()
}

func axes(d *svgDoc, maxX, maxY float64, xLabel, yLabel string, px, py func(float64) float64) {
	x0, y0 := float64(padL), float64(chartH-padB)
	d.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", x0, y0, float64(chartW-padR), y0)
	d.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", x0, float64(padT), x0, y0)
	for i := 0; i <= 5; i++ {
		v := maxY * float64(i) / 5
		y := py(v)
		d.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", x0, y, float64(chartW-padR), y)
		d.text(x0-6, y+4, "end", "11", axisLabel(v))
	}
	if px != nil {
		for i := 0; i <= 5; i++ {
			v := maxX * float64(i) / 5
			d.text(px(v), y0+16, "middle", "11", axisLabel(v))
		}
	}
	if xLabel != "" {
		d.text(float64(padL)+float64(chartW-padL-padR)/2, float64(chartH-18), "middle", "12", xLabel)
	}
	if yLabel != "" {
		d.printf(`<text x="16" y="%.1f" text-anchor="middle" font-size="12" transform="rotate(-90 16 %.1f)">%s</text>`+"\n",
			float64(padT)+float64(chartH-padT-padB)/2, float64(padT)+float64(chartH-padT-padB)/2, html.EscapeString(yLabel))
	}
}

func legend(d *svgDoc, i int, color, name string) {
	x, y := float64(padL+12), float64(padT+12+i*16)
	d.printf(`<rect x="%.1f" y="%.1f" width="12" height="10" fill="%s"/>`+"\n", x, y-9, color)
	d.text(x+16, y, "start", "12", name)
}
