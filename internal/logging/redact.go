package logging

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// Replacement texts. They say what was removed, so a reader knows a value existed.
const (
	RedactedPAN    = "[REDACTED PAN]"
	RedactedSecret = "[REDACTED]"
	redactedValue  = "[REDACTED: value contained card data]"
)

// Redact wraps next so that no record it passes on carries a card number or a secret:
//
//   - anything that looks like a PAN (a run of 13 to 19 digits, optionally grouped by single
//     spaces or dashes, that passes the Luhn check) is replaced in the message and in every
//     string, number, error, Stringer and structured value, however deeply grouped;
//   - attributes named like a card security code or a credential (cvv, cvc, card_number,
//     security_code, pan, *_token, *_secret, password, api_key, authorization) lose their
//     value whatever it is.
//
// The guard is the last line of defence, not the first: the issuer package already redacts
// issuer.Secrets on every formatting path. It costs a digit count per string, which is why it
// can wrap every handler.
func Redact(next slog.Handler) slog.Handler {
	if r, ok := next.(*redactor); ok {
		return r
	}
	return &redactor{next: next}
}

type redactor struct{ next slog.Handler }

func (h *redactor) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *redactor) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, ScrubPANs(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(scrubAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactor) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = scrubAttr(a)
	}
	return &redactor{next: h.next.WithAttrs(clean)}
}

func (h *redactor) WithGroup(name string) slog.Handler {
	return &redactor{next: h.next.WithGroup(name)}
}

func scrubAttr(a slog.Attr) slog.Attr {
	if SensitiveKey(a.Key) {
		return slog.String(a.Key, RedactedSecret)
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, ScrubPANs(v.String()))
	case slog.KindInt64:
		if s := strconv.FormatInt(v.Int64(), 10); looksLikePAN(strings.TrimPrefix(s, "-")) {
			return slog.String(a.Key, RedactedPAN)
		}
	case slog.KindUint64:
		if looksLikePAN(strconv.FormatUint(v.Uint64(), 10)) {
			return slog.String(a.Key, RedactedPAN)
		}
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, ga := range g {
			clean[i] = scrubAttr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		if s, changed := scrubAny(v.Any()); changed {
			return slog.String(a.Key, s)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// scrubAny checks a value the handler would format itself. It returns the text to log instead
// and true when the value held card data; otherwise the value is logged as it was.
func scrubAny(x any) (string, bool) {
	switch v := x.(type) {
	case nil:
		return "", false
	case error:
		return changedScrub(v.Error())
	case []byte:
		return changedScrub(string(v))
	case fmt.Stringer:
		return changedScrub(v.String())
	}
	// A struct or map: the JSON handler would marshal it, the text handler print it with %+v.
	// Check both renderings; a hit replaces the whole value, because a partial scrub of a
	// structure could leave it misleading.
	texts := []string{fmt.Sprintf("%+v", x)}
	if b, err := json.Marshal(x); err == nil {
		texts = append(texts, string(b))
	}
	for _, t := range texts {
		if _, changed := changedScrub(t); changed || jsonHasSensitiveKey(t) {
			return redactedValue, true
		}
	}
	return "", false
}

func changedScrub(s string) (string, bool) {
	c := ScrubPANs(s)
	return c, c != s
}

// jsonHasSensitiveKey reports whether a JSON text has an object key SensitiveKey rejects.
func jsonHasSensitiveKey(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '"' {
			continue
		}
		end := strings.IndexByte(s[i+1:], '"')
		if end < 0 {
			return false
		}
		key := s[i+1 : i+1+end]
		rest := strings.TrimLeft(s[i+2+end:], " \t\r\n")
		if strings.HasPrefix(rest, ":") && SensitiveKey(key) {
			return true
		}
		i += end + 1
	}
	return false
}

// SensitiveKey reports whether an attribute or field name denotes a card security code, a card
// number or a credential, whose value is never logged.
func SensitiveKey(key string) bool {
	var b strings.Builder
	for _, c := range strings.ToLower(key) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		}
	}
	k := b.String()
	if k == "" {
		return false
	}
	if strings.Contains(k, "cvv") || strings.Contains(k, "cvc") {
		return true
	}
	switch k {
	case "pan", "csc", "cvn", "cid", "number", "cardnumber", "primaryaccountnumber":
		// "number" alone is the field issuers and issuer.Secrets use for the PAN.
		return true
	}
	for _, suffix := range []string{"token", "secret", "password", "passwd", "apikey", "authorization",
		"cardnumber", "securitycode", "privatekey", "vaultkey", "codeckey"} {
		if strings.HasSuffix(k, suffix) {
			return true
		}
	}
	return false
}

// ScrubPANs replaces every PAN-looking run in s (13 to 19 digits, optionally grouped by single
// spaces or dashes, Luhn-valid) with RedactedPAN.
func ScrubPANs(s string) string {
	if countDigits(s) < 13 {
		return s // the common case: nothing that long to look at
	}
	var out strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		groups, end := digitRun(s, i)
		for _, span := range panSpans(groups) {
			out.WriteString(s[last:span[0]])
			out.WriteString(RedactedPAN)
			last = span[1]
		}
		i = end
	}
	if last == 0 {
		return s
	}
	out.WriteString(s[last:])
	return out.String()
}

// group is a maximal run of digits inside a separated run: s[start:end].
type group struct {
	start, end int
	digits     string
}

// digitRun reads the run starting at s[i]: digit groups joined by single spaces or dashes.
func digitRun(s string, i int) ([]group, int) {
	var gs []group
	for {
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		gs = append(gs, group{start: start, end: i, digits: s[start:i]})
		if i+1 < len(s) && (s[i] == ' ' || s[i] == '-') && isDigit(s[i+1]) {
			i++
			continue
		}
		return gs, i
	}
}

// panSpans finds the byte spans of PANs in a run: for each starting group, the longest
// sequence of whole groups with 13–19 digits that passes Luhn. A plain run longer than 19
// digits is one group and so never matches: it is an id or a hash, not a card number.
func panSpans(gs []group) [][2]int {
	var spans [][2]int
	for i := 0; i < len(gs); {
		best := -1
		var digits []byte
		for j := i; j < len(gs); j++ {
			digits = append(digits, gs[j].digits...)
			if len(digits) > 19 {
				break
			}
			if len(digits) >= 13 && luhn(digits) {
				best = j
			}
		}
		if best < 0 {
			i++
			continue
		}
		spans = append(spans, [2]int{gs[i].start, gs[best].end})
		i = best + 1
	}
	return spans
}

func looksLikePAN(digits string) bool {
	return len(digits) >= 13 && len(digits) <= 19 && luhn([]byte(digits))
}

// luhn reports whether the digits pass the Luhn (mod 10) check every card number satisfies.
func luhn(digits []byte) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			n++
		}
	}
	return n
}
