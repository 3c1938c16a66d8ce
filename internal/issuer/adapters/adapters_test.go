package adapters

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuersim"
)

func TestNew(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("no issuers configured must be an error")
	}
	env := map[string]string{
		EnvSimURL: "http://127.0.0.1:8090", EnvStripeAPIKey: "sk_test_x", EnvStripeURL: "http://127.0.0.1:12111",
		EnvAIPPAPIKey: "aipp_x", EnvAIPPURL: "http://127.0.0.1:8090",
	}
	reg, err := New(FromEnv(func(k string) string { return env[k] }))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(reg.Names()); got != "[aipaymentproxy sim stripe]" {
		t.Fatalf("names: %s", got)
	}
	reg, err = New(Config{Sim: SimConfig{BaseURL: "http://127.0.0.1:8090"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get("stripe"); err == nil {
		t.Fatal("stripe must be absent without its key")
	}
	if _, err := New(Config{AIPP: AIPPConfig{BaseURL: "http://x"}}); err == nil {
		t.Fatal("AIPP URL without a key must be an error")
	}
	if _, err := New(Config{Sim: SimConfig{BaseURL: "not a url"}}); err == nil {
		t.Fatal("bad sim URL accepted")
	}
}

// TestSimDefaultsWork: a registry built from just the simulator's URL talks to a simulator
// started with its defaults.
func TestSimDefaultsWork(t *testing.T) {
	s, err := issuersim.NewServer(issuersim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer func() { ts.Close(); s.Close() }()
	reg, err := New(Config{Sim: SimConfig{BaseURL: ts.URL}, AIPP: AIPPConfig{BaseURL: ts.URL, APIKey: issuersim.DefaultAPIKey}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sim", "aipaymentproxy"} {
		is, err := reg.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := is.CreateCard(context.Background(), issuer.CreateCardRequest{IdempotencyKey: "k-" + name, Limits: []issuer.SpendLimit{{AmountMinor: 1000, Interval: issuer.AllTime}}})
		if err != nil || c.Status != issuer.CardActive {
			t.Fatalf("%s: %+v %v", name, c, err)
		}
	}
}
