package money

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func TestParse(t *testing.T) {
	ok := map[string]int64{
		"0": 0, "50": 5000, "12.5": 1250, "12.50": 1250, "12.500": 1250, "0.01": 1, "-3.05": -305,
		"1.25e1": 1250, "5e-1": 50, "1E2": 10000, "007": 700, "0.000": 0, "-0": 0,
		"92233720368547758.07": math.MaxInt64, "-92233720368547758.08": math.MinInt64,
	}
	for in, want := range ok {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := map[string]error{
		"": ErrSyntax, "abc": ErrSyntax, "NaN": ErrSyntax, "Inf": ErrSyntax, "1.": ErrSyntax, ".5": ErrSyntax,
		"+1": ErrSyntax, " 1": ErrSyntax, "1,5": ErrSyntax, "$1": ErrSyntax, "1e": ErrSyntax, "1.2.3": ErrSyntax, "-": ErrSyntax,
		"0.001": ErrPrecision, "12.345": ErrPrecision, "1e-3": ErrPrecision, "1e-999": ErrPrecision,
		"92233720368547758.08": ErrRange, "1e30": ErrRange, "1e9999": ErrRange, "99999999999999999999": ErrRange,
	}
	for in, want := range bad {
		if got, err := Parse(in); !errors.Is(err, want) {
			t.Errorf("Parse(%q) = %d, %v; want error %v", in, got, err, want)
		}
	}
}

func TestParseNonNegative(t *testing.T) {
	if _, err := ParseNonNegative("-1"); !errors.Is(err, ErrNegative) {
		t.Fatalf("want ErrNegative, got %v", err)
	}
	if m, err := ParseNonNegative("1"); err != nil || m != 100 {
		t.Fatalf("got %d, %v", m, err)
	}
}

func TestParseJSON(t *testing.T) {
	for in, want := range map[string]int64{`50`: 5000, `12.5`: 1250, `"12.50"`: 1250, ` "0.10" `: 10} {
		if got, err := ParseJSON([]byte(in)); err != nil || got != want {
			t.Errorf("ParseJSON(%s) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{`null`, ``, `"`, `"1`, `true`, `[1]`, `{"a":1}`, `"1\"2"`, `"12.345"`} {
		if _, err := ParseJSON([]byte(in)); err == nil {
			t.Errorf("ParseJSON(%s): want error", in)
		}
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[int64]string{0: "0.00", 1: "0.01", 1250: "12.50", -5: "-0.05", -305: "-3.05",
		math.MaxInt64: "92233720368547758.07", math.MinInt64: "-92233720368547758.08"} {
		if got := Format(in); got != want {
			t.Errorf("Format(%d) = %q; want %q", in, got, want)
		}
		if back, err := Parse(Format(in)); err != nil || back != in {
			t.Errorf("round trip %d: %d, %v", in, back, err)
		}
	}
}

func TestAmountJSON(t *testing.T) {
	var v struct {
		A Amount  `json:"a"`
		B *Amount `json:"b,omitempty"`
	}
	if err := json.Unmarshal([]byte(`{"a": 0.1, "b": "0.20"}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A+*v.B != 30 {
		t.Fatalf("0.1 + 0.2 = %d minor units, want 30", v.A+*v.B)
	}
	out, _ := json.Marshal(v)
	if string(out) != `{"a":"0.10","b":"0.20"}` {
		t.Fatalf("marshal: %s", out)
	}
	if err := json.Unmarshal([]byte(`{"a": 1.234}`), &v); err == nil {
		t.Fatal("want precision error")
	}
}
