package issuersim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// amount is a money value accepted at the API edge as a decimal dollar string ("12.34") or a
// JSON number (12.34). It is parsed from its text, never through a float, so "0.29" is exactly
// 29 cents.
type amount struct {
	set   bool
	minor int64
}

func (a *amount) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*a = amount{}
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	m, err := parseUSD(s)
	if err != nil {
		return err
	}
	*a = amount{set: true, minor: m}
	return nil
}

// parseUSD parses a non-negative decimal number of dollars with at most two significant
// decimal places into cents. Extra decimal zeros are fine ("1.500"); anything finer than a
// cent, signs, exponents and thousands separators are rejected rather than rounded, because a
// silently rounded amount is a wrong amount.
func parseUSD(s string) (int64, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "$")
	if s == "" {
		return 0, errors.New("amount is empty")
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" && (!hasDot || frac == "") {
		return 0, fmt.Errorf("amount %q is not a decimal number", s)
	}
	if hasDot && frac == "" {
		return 0, fmt.Errorf("amount %q is not a decimal number", s)
	}
	for _, part := range []string{whole, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("amount %q must be a non-negative decimal like 12.34", s)
			}
		}
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 2 {
		return 0, fmt.Errorf("amount %q has more precision than a cent", s)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	if whole == "" {
		whole = "0"
	}
	dollars, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || dollars > (math.MaxInt64-99)/100 {
		return 0, fmt.Errorf("amount %q is too large", s)
	}
	cents, _ := strconv.ParseInt(frac, 10, 64)
	return dollars*100 + cents, nil
}

// formatUSD renders cents as a decimal dollar string.
func formatUSD(minor int64) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d", sign, minor/100, minor%100)
}
