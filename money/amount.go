package money

import (
	"fmt"
	"strconv"
)

// Amount is an exact amount in minor units. In JSON it reads dollars written either as a number
// (12.5) or as a string ("12.50"), and always writes a string ("12.50") so that no JSON reader
// ever turns it into a float.
type Amount int64

// FromMinor wraps minor units.
func FromMinor(minor int64) Amount { return Amount(minor) }

// MustParse parses a decimal amount and panics on error; for constants and tests.
func MustParse(s string) Amount {
	m, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return Amount(m)
}

// Minor returns the amount in minor units.
func (a Amount) Minor() int64 { return int64(a) }

// String formats the amount as "12.50".
func (a Amount) String() string { return Format(int64(a)) }

// MarshalJSON writes the amount as a decimal string.
func (a Amount) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(Format(int64(a)))), nil }

// UnmarshalJSON reads a JSON number or decimal string of major units. It accepts negative
// amounts; whether a negative amount is allowed is the caller's rule to check.
func (a *Amount) UnmarshalJSON(b []byte) error {
	m, err := ParseJSON(b)
	if err != nil {
		return fmt.Errorf("amount: %w", err)
	}
	*a = Amount(m)
	return nil
}
