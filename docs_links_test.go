package cardwarden_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The README is the front page and docs/ holds the references, each written once; they link to
// each other by section. Every relative link in README.md and docs/*.md points at a file that
// exists and, when it names an anchor, at a heading of that file, so moving a section cannot
// leave a link behind.
func TestDocsLinksResolve(t *testing.T) {
	files, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"README.md"}, files...)
	anchors := map[string]map[string]bool{} // file (slash-separated, from the root) → its anchors
	anchorsOf := func(file string) map[string]bool {
		if a, ok := anchors[file]; ok {
			return a
		}
		src, err := os.ReadFile(filepath.FromSlash(file))
		if err != nil {
			t.Fatal(err)
		}
		anchors[file] = headingAnchors(string(src))
		return anchors[file]
	}
	checked := 0
	for _, file := range files {
		file = filepath.ToSlash(file)
		src, err := os.ReadFile(filepath.FromSlash(file))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range relativeLinks(string(src)) {
			checked++
			path, anchor, _ := strings.Cut(l.target, "#")
			target := file
			if path != "" {
				target = filepath.ToSlash(filepath.Join(filepath.Dir(file), path))
				if _, err := os.Stat(filepath.FromSlash(target)); err != nil {
					t.Errorf("%s:%d: link (%s): %s does not exist", file, l.line, l.target, target)
					continue
				}
			}
			if anchor == "" {
				continue
			}
			if !strings.HasSuffix(target, ".md") {
				t.Errorf("%s:%d: link (%s): an anchor into %s, which is not markdown", file, l.line, l.target, target)
				continue
			}
			if !anchorsOf(target)[anchor] {
				t.Errorf("%s:%d: link (%s): %s has no heading #%s", file, l.line, l.target, target, anchor)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d relative links found in README.md and docs/: the link pattern no longer matches", checked)
	}
}

func TestDocsHeadingAnchorsFollowGitHub(t *testing.T) {
	for heading, want := range map[string]string{
		"## From Go: package `starter`":                                       "from-go-package-starter",
		"## Driving cardwarden: CLI, HTTP API, Go, Temporal, schedules":       "driving-cardwarden-cli-http-api-go-temporal-schedules",
		"### Resilience tests (`make test-resilience`)":                       "resilience-tests-make-test-resilience",
		"#### Control plane (`/v1/sim/*`, never rate limited)":                "control-plane-v1sim-never-rate-limited",
		"## Management (admin token: `Bearer $CARDWARDEN_ADMIN_TOKEN`)":       "management-admin-token-bearer-cardwarden_admin_token",
		"# Benchmarks, resilience tests and hostile input":                    "benchmarks-resilience-tests-and-hostile-input",
		"### Purchases and money movement (for simulated agents — merchants)": "purchases-and-money-movement-for-simulated-agents--merchants",
	} {
		if got := headingAnchors(heading + "\n"); !got[want] || len(got) != 1 {
			t.Errorf("%q: anchors %v, want %s", heading, got, want)
		}
	}
	// A repeated heading gets -1, -2, … as on GitHub; a "#" line in a code block is no heading.
	got := headingAnchors("## Alerts\n```sh\n# alerts\n```\n### Alerts\n## Alerts\n")
	for _, a := range []string{"alerts", "alerts-1", "alerts-2"} {
		if !got[a] {
			t.Errorf("repeated headings: no #%s in %v", a, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("repeated headings: %v", got)
	}
}

type docLink struct {
	line   int
	target string
}

var (
	headingLine = regexp.MustCompile(`^#{1,6} +(.+)$`)
	// The target of an inline link: "](target)". Link text may span lines, the target does not.
	linkTarget = regexp.MustCompile(`\]\(([^()\s]+)\)`)
	// Characters GitHub drops when it makes a heading's anchor: everything but letters, digits,
	// spaces, '-' and '_'.
	anchorDropped = regexp.MustCompile(`[^\p{L}\p{N} _-]`)
)

// relativeLinks lists the links of a markdown text that stay in the repository (no scheme, not
// mailto), outside fenced code blocks.
func relativeLinks(src string) []docLink {
	var out []docLink
	eachLine(src, func(n int, line string, code bool) {
		if code {
			return
		}
		for _, m := range linkTarget.FindAllStringSubmatch(line, -1) {
			t := m[1]
			if strings.Contains(t, "://") || strings.HasPrefix(t, "mailto:") {
				continue
			}
			out = append(out, docLink{n, t})
		}
	})
	return out
}

// headingAnchors lists the anchors GitHub gives a markdown text's headings: lower case, spaces
// to '-', punctuation (backticks too) dropped except '-' and '_', and -1, -2, … on repeats.
func headingAnchors(src string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	eachLine(src, func(_ int, line string, code bool) {
		m := headingLine.FindStringSubmatch(line)
		if code || m == nil {
			return
		}
		slug := strings.ReplaceAll(anchorDropped.ReplaceAllString(strings.ToLower(strings.TrimSpace(m[1])), ""), " ", "-")
		a := slug
		if n := seen[slug]; n > 0 {
			a = slug + "-" + strconv.Itoa(n)
		}
		seen[slug]++
		anchors[a] = true
	})
	return anchors
}

// eachLine calls f with each line's number (from 1), its text and whether it is inside a fenced
// code block (the fences themselves count as code).
func eachLine(src string, f func(n int, line string, code bool)) {
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	code := false
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if fence := strings.HasPrefix(strings.TrimSpace(line), "```"); fence || code {
			if fence {
				code = !code
			}
			f(n, line, true)
			continue
		}
		f(n, line, false)
	}
}
