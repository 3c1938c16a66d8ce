package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	visa     = "4242424242424242"     // Luhn-valid test Visa
	amex     = "378282246310005"      // Luhn-valid test Amex (15 digits)
	notLuhn  = "4242424242424241"     // 16 digits, fails Luhn
	long20   = "42424242424242424242" // 20 digits: an id, not a PAN
	visa19   = "4000000000000000006"  // 19 digits, Luhn-valid
	maestro  = "6759649826438453"
	spaced   = "4242 4242 4242 4242"
	dashed   = "4242-4242-4242-4242"
	someText = "nothing to see"
)

func jsonLogger(t *testing.T) (*slog.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	l, err := New(&buf, Options{Format: FormatJSON, Level: slog.LevelDebug})
	require.NoError(t, err)
	return l, &buf
}

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, ln := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if ln == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(ln), &m), ln)
		out = append(out, m)
	}
	return out
}

func TestScrubPANs(t *testing.T) {
	cases := map[string]string{
		"card " + visa + " declined":      "card " + RedactedPAN + " declined",
		amex:                              RedactedPAN,
		visa19:                            RedactedPAN,
		"x" + maestro + "y":               "x" + RedactedPAN + "y",
		"pan=" + spaced + ".":             "pan=" + RedactedPAN + ".",
		dashed:                            RedactedPAN,
		"cards " + visa + "," + amex:      "cards " + RedactedPAN + "," + RedactedPAN,
		notLuhn:                           notLuhn,
		long20:                            long20,
		"order 123456789012":              "order 123456789012", // 12 digits
		someText:                          someText,
		"2026-11-28 12:00:00 amount 1250": "2026-11-28 12:00:00 amount 1250",
		// a PAN followed by its CVV in the same run of groups is still caught
		spaced + " 123": RedactedPAN + " 123",
	}
	for in, want := range cases {
		assert.Equal(t, want, ScrubPANs(in), "input %q", in)
	}
}

func TestLuhn(t *testing.T) {
	for _, ok := range []string{visa, amex, visa19, maestro, "5555555555554444", "6011111111111117"} {
		assert.True(t, luhn([]byte(ok)), ok)
	}
	for _, bad := range []string{notLuhn, "1234567890123", "5555555555554445"} {
		assert.False(t, luhn([]byte(bad)), bad)
	}
}

type cardish struct {
	Label  string
	Number string `json:"number"`
}

type innocent struct {
	Label string `json:"label"`
	Count int    `json:"count"`
}

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

func TestRedactHandlerScrubsEverywhere(t *testing.T) {
	l, buf := jsonLogger(t)
	l = l.With("issued", visa, "cvv", "123")
	l.Info("issued card "+visa,
		"pan_spaced", spaced,
		"as_int", int64(4242424242424242),
		"as_uint", uint64(4242424242424242),
		"err", fmt.Errorf("issuer said: bad card %s", visa),
		"stringer", stringer{"card " + amex},
		"bytes", []byte("n="+visa),
		"struct", cardish{Label: "x", Number: "n/a"},
		"struct_pan", struct{ Note string }{"see " + visa},
		slog.Group("card", "number", visa, "cvc", "999", "last4", "4242"),
		"CVV2", "321",
		"security_code", "555",
		"admin_token", "s3cr3t-token",
		"webhook_secret", "whsec_abc",
		"Authorization", "Bearer abc",
		"fine", innocent{Label: "ok", Count: 3},
		"ms", int64(1732000000001), // 13 digits, not Luhn-valid
		"last4", "4242",
	)
	out := buf.String()
	for _, secret := range []string{visa, amex, "4242 4242", "s3cr3t", "whsec_abc", "Bearer abc", `"123"`, `"999"`, `"321"`, `"555"`} {
		assert.NotContains(t, out, secret)
	}
	m := lines(t, buf)[0]
	assert.Equal(t, "issued card "+RedactedPAN, m["msg"])
	assert.Equal(t, RedactedPAN, m["issued"])
	assert.Equal(t, RedactedSecret, m["cvv"])
	assert.Equal(t, RedactedPAN, m["pan_spaced"])
	assert.Equal(t, RedactedPAN, m["as_int"])
	assert.Equal(t, RedactedPAN, m["as_uint"])
	assert.Equal(t, "issuer said: bad card "+RedactedPAN, m["err"])
	assert.Equal(t, "card "+RedactedPAN, m["stringer"])
	assert.Equal(t, "n="+RedactedPAN, m["bytes"])
	assert.Equal(t, redactedValue, m["struct"], "a struct with a card-number field is withheld")
	assert.Equal(t, redactedValue, m["struct_pan"])
	card := m["card"].(map[string]any)
	assert.Equal(t, RedactedSecret, card["number"])
	assert.Equal(t, RedactedSecret, card["cvc"])
	assert.Equal(t, "4242", card["last4"])
	assert.Equal(t, RedactedSecret, m["CVV2"])
	assert.Equal(t, RedactedSecret, m["security_code"])
	assert.Equal(t, RedactedSecret, m["admin_token"])
	assert.Equal(t, RedactedSecret, m["webhook_secret"])
	assert.Equal(t, RedactedSecret, m["Authorization"])
	assert.Equal(t, map[string]any{"label": "ok", "count": float64(3)}, m["fine"], "innocent structs keep their JSON form")
	assert.Equal(t, float64(1732000000001), m["ms"])
	assert.Equal(t, "4242", m["last4"])
}

type panValuer struct{}

func (panValuer) LogValue() slog.Value { return slog.StringValue("leaky " + visa) }

func TestRedactResolvesLogValuers(t *testing.T) {
	l, buf := jsonLogger(t)
	l.Info("x", "v", panValuer{})
	assert.Equal(t, "leaky "+RedactedPAN, lines(t, buf)[0]["v"])
}

func TestRedactWithGroupAndText(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, Options{Format: FormatText})
	require.NoError(t, err)
	l.WithGroup("req").With("body", "pan "+visa).Info("got", "cvc", "123", "err", errors.New(amex))
	out := buf.String()
	assert.NotContains(t, out, visa)
	assert.NotContains(t, out, amex)
	assert.NotContains(t, out, "123")
	assert.Contains(t, out, "req.body=")
	assert.Contains(t, out, "req.cvc="+RedactedSecret)
}

func TestSensitiveKey(t *testing.T) {
	for _, k := range []string{"cvv", "CVC", "card_cvv", "cvc2", "pan", "card_number", "cardNumber", "number",
		"security-code", "api_key", "admin_token", "Authorization", "password", "vault_key", "codec_key"} {
		assert.True(t, SensitiveKey(k), k)
	}
	for _, k := range []string{"agent_id", "last4", "token_hash", "amount_minor", "card_id", "kind", "period", "", "generation"} {
		assert.False(t, SensitiveKey(k), k)
	}
}

func TestAgentIDFromContext(t *testing.T) {
	l, buf := jsonLogger(t)
	ctx := WithAgentID(context.Background(), "support-bot")
	assert.Equal(t, "support-bot", AgentID(ctx))
	l.InfoContext(ctx, "one")
	l.InfoContext(ctx, "two", "agent_id", "explicit")
	l.With("agent_id", "with").InfoContext(ctx, "three")
	l.InfoContext(context.Background(), "four")
	ms := lines(t, buf)
	require.Len(t, ms, 4)
	assert.Equal(t, "support-bot", ms[0]["agent_id"])
	assert.Equal(t, "explicit", ms[1]["agent_id"])
	assert.Equal(t, "with", ms[2]["agent_id"])
	assert.NotContains(t, ms[3], "agent_id")
	assert.Equal(t, 1, strings.Count(strings.Split(buf.String(), "\n")[2], "agent_id"), "no duplicate key")
}

func TestTemporalAdapterGoesThroughTheGuard(t *testing.T) {
	l, buf := jsonLogger(t)
	tl := Temporal(l)
	tl.Info("activity failed", "Error", "card "+visa+" rejected", "WorkflowID", "agent/bot")
	m := lines(t, buf)[0]
	assert.Equal(t, "activity failed", m["msg"])
	assert.Equal(t, "card "+RedactedPAN+" rejected", m["Error"])
	assert.Equal(t, "agent/bot", m["WorkflowID"])
}

func TestNewRejectsUnknownFormatAndParsesLevels(t *testing.T) {
	_, err := New(&bytes.Buffer{}, Options{Format: "xml"})
	require.Error(t, err)
	lv, err := ParseLevel("warn")
	require.NoError(t, err)
	assert.Equal(t, slog.LevelWarn, lv)
	_, err = ParseLevel("loud")
	require.Error(t, err)

	var buf bytes.Buffer
	l, err := New(&buf, Options{Level: slog.LevelWarn})
	require.NoError(t, err)
	l.Info("hidden")
	l.Warn("shown")
	assert.NotContains(t, buf.String(), "hidden")
	assert.Contains(t, buf.String(), "shown")
}

func TestRedactIsIdempotent(t *testing.T) {
	var buf bytes.Buffer
	h := Redact(slog.NewJSONHandler(&buf, nil))
	assert.Same(t, h, Redact(h))
}
