package money_test

import (
	"encoding/json"
	"errors"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cardwarden/cardwarden/money"
)

// grammar is every string Parse may accept: an optional minus, digits, an optional fraction
// with at least one digit, an optional exponent.
var grammar = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// reference computes what Parse must return for s using exact rational arithmetic. ok is
// false when there is no single right answer to compare with: s is outside the grammar (any
// error will do, and FuzzParse checks there is one) or its exponent is beyond the ±40 that
// Parse evaluates (it refuses those without computing 10^exponent).
func reference(s string) (minor int64, wantErr error, ok bool) {
	if !grammar.MatchString(s) {
		return 0, nil, false
	}
	mant, exp := s, "0"
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, exp = s[:i], s[i+1:]
	}
	e, err := strconv.Atoi(strings.TrimLeft(strings.TrimLeft(exp, "+-"), "0") + "0")
	if err != nil || e/10 > 40 {
		return 0, nil, false // Parse refuses exponents over 40 without evaluating them
	}
	e /= 10
	if strings.HasPrefix(exp, "-") {
		e = -e
	}
	r, ok := new(big.Rat).SetString(mant)
	if !ok {
		return 0, nil, false
	}
	scale := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(e))), nil))
	if e >= 0 {
		r.Mul(r, scale)
	} else {
		r.Quo(r, scale)
	}
	r.Mul(r, big.NewRat(money.Scale, 1))
	if !r.IsInt() {
		return 0, money.ErrPrecision, true
	}
	n := r.Num()
	if !n.IsInt64() {
		return 0, money.ErrRange, true
	}
	return n.Int64(), nil, true
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// FuzzParse checks Parse against exact rational arithmetic: whatever it accepts has exactly
// the value the decimal denotes, it rounds nothing, and Format gives back a string that
// parses to the same amount.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "12.50", "-3.05", "1.25e1", "5e-1", "0.001", "1e30", "92233720368547758.07",
		"-92233720368547758.08", "92233720368547758.08", "1.", ".5", "+1", "0e99", "1e-41", "00000000000000000000012"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := money.Parse(s)
		if err != nil {
			if !errors.Is(err, money.ErrSyntax) && !errors.Is(err, money.ErrPrecision) && !errors.Is(err, money.ErrRange) {
				t.Fatalf("Parse(%q): untyped error %v", s, err)
			}
		} else {
			if !grammar.MatchString(s) {
				t.Fatalf("Parse(%q) = %d: accepted a string outside the decimal grammar", s, got)
			}
			back, err := money.Parse(money.Format(got))
			if err != nil || back != got {
				t.Fatalf("Parse(Format(%d)) = %d, %v", got, back, err)
			}
		}
		want, wantErr, ok := reference(s)
		if !ok {
			return
		}
		switch {
		case wantErr == nil && err != nil:
			t.Fatalf("Parse(%q): %v; want %d", s, err, want)
		case wantErr == nil && got != want:
			t.Fatalf("Parse(%q) = %d; want %d", s, got, want)
		case wantErr != nil && !errors.Is(err, wantErr):
			t.Fatalf("Parse(%q) = %d, %v; want %v", s, got, err, wantErr)
		}
	})
}

// FuzzParseJSON checks that a JSON amount means the same as the decimal inside it, that the
// Amount type round-trips through its own JSON form, and that nothing a client sends panics.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`50`, `12.5`, `"12.50"`, ` "0.10" `, `null`, `""`, `"`, `"1\"2"`, `true`, `[1]`, `{"a":1}`,
		`1e2`, `"-0.05"`, `"\u0031"`, `18446744073709551616`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := money.ParseJSON(b)
		var a money.Amount
		uerr := json.Unmarshal(b, &a)
		if err != nil {
			if uerr == nil && json.Valid(b) {
				t.Fatalf("ParseJSON(%q) failed (%v) but Amount.UnmarshalJSON accepted it as %d", b, err, a)
			}
			return
		}
		inner := strings.TrimSpace(string(b))
		if strings.HasPrefix(inner, `"`) {
			inner = inner[1 : len(inner)-1]
		}
		if direct, derr := money.Parse(inner); derr != nil || direct != got {
			t.Fatalf("ParseJSON(%q) = %d but Parse(%q) = %d, %v", b, got, inner, direct, derr)
		}
		if json.Valid(b) && (uerr != nil || int64(a) != got) {
			t.Fatalf("json.Unmarshal(%q) into Amount = %d, %v; ParseJSON = %d", b, a, uerr, got)
		}
		out, err := json.Marshal(money.Amount(got))
		if err != nil {
			t.Fatal(err)
		}
		var back money.Amount
		if err := json.Unmarshal(out, &back); err != nil || int64(back) != got {
			t.Fatalf("round trip of %d via %s: %d, %v", got, out, back, err)
		}
	})
}
