// Package money converts between the decimal dollar amounts people and JSON use at the edges and
// the exact int64 minor units (cents) cardwarden uses inside. Floats never touch money: amounts
// are parsed digit by digit, so 0.1 + 0.2 is 30 cents, not 30.000000000000004.
package money

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Scale is the number of minor units in one major unit (cents per dollar).
const Scale = 100

// decimals is the number of fractional digits a minor unit allows.
const decimals = 2

// MaxMinor is the largest amount cardwarden accepts anywhere money enters it (a policy limit,
// an issuer event, a simulated purchase): 1,000,000,000.00. Far above any agent's budget, and
// far enough below MaxInt64 that sums of limits, usage and allowances cannot overflow.
const MaxMinor int64 = 1_000_000_000_00

// CheckBound reports an amount outside [1, MaxMinor] with what bound it broke.
func CheckBound(minor int64) error {
	switch {
	case minor <= 0:
		return fmt.Errorf("amount %s: must be greater than 0", Format(minor))
	case minor > MaxMinor:
		return fmt.Errorf("amount %s: above the maximum of %s", Format(minor), Format(MaxMinor))
	}
	return nil
}

// Errors returned by Parse, for errors.Is.
var (
	ErrSyntax    = errors.New("not a decimal amount")
	ErrPrecision = errors.New("more than 2 decimal places")
	ErrRange     = errors.New("amount out of range")
	ErrNegative  = errors.New("must not be negative")
)

// maxExponent bounds exponent notation: anything larger cannot fit an int64 of cents anyway,
// and the bound keeps parsing from looping over absurd exponents like 1e999999999.
const maxExponent = 40

// Parse reads a decimal amount of major units ("12", "12.5", "12.50", "-3.05", "1.25e1") and
// returns it in minor units. Sub-cent precision that is not zero ("0.001") is rejected rather
// than rounded, because silently rounding a budget is how bills surprise people.
func Parse(s string) (int64, error) {
	minor, err := parse(s)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	return minor, nil
}

// ParseNonNegative is Parse for amounts that cannot be negative, such as limits.
func ParseNonNegative(s string) (int64, error) {
	minor, err := Parse(s)
	if err != nil {
		return 0, err
	}
	if minor < 0 {
		return 0, fmt.Errorf("%q: %w", s, ErrNegative)
	}
	return minor, nil
}

// ParseJSON reads an amount written as a JSON number (12.5) or a JSON string ("12.50").
func ParseJSON(b []byte) (int64, error) {
	s := strings.TrimSpace(string(b))
	if s == "" || s == "null" {
		return 0, fmt.Errorf("%w: empty", ErrSyntax)
	}
	if s[0] == '"' {
		if len(s) < 2 || s[len(s)-1] != '"' || strings.ContainsAny(s[1:len(s)-1], `"\`) {
			return 0, fmt.Errorf("%s: %w", s, ErrSyntax)
		}
		s = s[1 : len(s)-1]
	}
	return Parse(s)
}

func parse(s string) (int64, error) {
	if s == "" {
		return 0, ErrSyntax
	}
	neg := false
	if s[0] == '-' {
		neg = true
		s = s[1:]
	}
	mantissa, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mantissa = s[:i]
		e, err := parseExponent(s[i+1:])
		if err != nil {
			return 0, err
		}
		exp = e
	}
	intPart, fracPart, hasPoint := strings.Cut(mantissa, ".")
	if intPart == "" || (hasPoint && fracPart == "") || !allDigits(intPart) || !allDigits(fracPart) {
		return 0, ErrSyntax
	}
	// The value is digits × 10^(exp - len(frac)); we want it × 10^decimals as an integer.
	digits := strings.TrimLeft(intPart+fracPart, "0")
	shift := exp - len(fracPart) + decimals
	if shift < 0 {
		// Dropping -shift trailing digits must only drop zeros.
		cut := -shift
		if cut > len(digits) {
			cut = len(digits)
		}
		if strings.Trim(digits[len(digits)-cut:], "0") != "" {
			return 0, ErrPrecision
		}
		digits = digits[:len(digits)-cut]
		shift = 0
	}
	if digits == "" {
		return 0, nil
	}
	if len(digits)+shift > 19 {
		return 0, ErrRange
	}
	var v uint64
	for _, c := range digits {
		v = v*10 + uint64(c-'0')
	}
	for range shift {
		v *= 10
	}
	if neg {
		if v > uint64(math.MaxInt64)+1 {
			return 0, ErrRange
		}
		return int64(-v), nil //nolint:gosec // bounded above
	}
	if v > math.MaxInt64 {
		return 0, ErrRange
	}
	return int64(v), nil
}

func parseExponent(s string) (int, error) {
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	if s == "" || !allDigits(s) {
		return 0, ErrSyntax
	}
	s = strings.TrimLeft(s, "0")
	if len(s) > 3 {
		return 0, ErrRange
	}
	e := 0
	for _, c := range s {
		e = e*10 + int(c-'0')
	}
	if e > maxExponent {
		if neg {
			return 0, ErrPrecision
		}
		return 0, ErrRange
	}
	if neg {
		e = -e
	}
	return e, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Format renders minor units as a decimal with exactly two places: 1250 → "12.50", -5 → "-0.05".
func Format(minor int64) string {
	sign := ""
	u := uint64(minor)
	if minor < 0 {
		sign = "-"
		u = uint64(-(minor + 1)) + 1 // safe for math.MinInt64
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/Scale, u%Scale)
}
