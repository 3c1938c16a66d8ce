package aipaymentproxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/aipaymentproxy"
	"github.com/cardwarden/cardwarden/internal/issuer/issuertest"
	"github.com/cardwarden/cardwarden/internal/issuersim"
)

func startSim(t *testing.T) (*issuersim.Server, string) {
	t.Helper()
	s, err := issuersim.NewServer(issuersim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts.URL
}

func newAdapter(t *testing.T, url string) *aipaymentproxy.Adapter {
	t.Helper()
	a, err := aipaymentproxy.New(aipaymentproxy.Config{BaseURL: url, APIKey: issuersim.DefaultAPIKey})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestContract(t *testing.T) {
	issuertest.Run(t, func(t *testing.T) issuertest.Harness {
		_, url := startSim(t)
		return issuertest.Harness{Issuer: newAdapter(t, url)}
	})
}

func TestLimitUSDRoundsDown(t *testing.T) {
	cases := []struct {
		limits []issuer.SpendLimit
		want   int64
		ok     bool
	}{
		{[]issuer.SpendLimit{{AmountMinor: 5000, Interval: issuer.Daily}}, 50, true},
		{[]issuer.SpendLimit{{AmountMinor: 5099, Interval: issuer.AllTime}}, 50, true},
		{[]issuer.SpendLimit{{AmountMinor: 9000, Interval: issuer.Daily}, {AmountMinor: 2550, Interval: issuer.PerAuthorization}}, 25, true},
		{[]issuer.SpendLimit{{AmountMinor: 99, Interval: issuer.Daily}}, 0, false},
		{[]issuer.SpendLimit{{AmountMinor: 5_000_100, Interval: issuer.Daily}}, 0, false},
		{nil, 0, false},
	}
	for _, c := range cases {
		got, err := aipaymentproxy.LimitUSD(c.limits)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("LimitUSD(%v) = %d, %v; want %d ok=%v", c.limits, got, err, c.want, c.ok)
		}
	}
}

func TestCreateCardSendsWholeDollarsAndTaggedLabel(t *testing.T) {
	_, url := startSim(t)
	a := newAdapter(t, url)
	ctx := context.Background()
	c, err := a.CreateCard(ctx, issuer.CreateCardRequest{IdempotencyKey: "agent/x/gen/1", Label: "support bot",
		Limits: []issuer.SpendLimit{{AmountMinor: 1999, Interval: issuer.Daily}}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Label != "support bot" || len(c.Limits) != 1 || c.Limits[0] != (issuer.SpendLimit{AmountMinor: 1900, Interval: issuer.AllTime}) {
		t.Fatalf("card: %+v", c)
	}
	// On the wire: the label carries the idempotency tag, the limit is whole dollars.
	req, _ := http.NewRequest("GET", url+"/api/v1/cards", nil)
	req.Header.Set("Authorization", "Bearer "+issuersim.DefaultAPIKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var list struct {
		Data []struct {
			Label    string `json:"label"`
			LimitUSD int64  `json:"limit_usd"`
		} `json:"data"`
	}
	json.NewDecoder(res.Body).Decode(&list)
	if len(list.Data) != 1 || !strings.HasPrefix(list.Data[0].Label, "support bot [cw:") || list.Data[0].LimitUSD != 19 {
		t.Fatalf("wire: %+v", list.Data)
	}

	// The same key with another limit is a conflict, not a silent second card.
	_, err = a.CreateCard(ctx, issuer.CreateCardRequest{IdempotencyKey: "agent/x/gen/1", Label: "support bot",
		Limits: []issuer.SpendLimit{{AmountMinor: 5000, Interval: issuer.Daily}}})
	if !errors.Is(err, issuer.ErrIdempotencyConflict) {
		t.Fatalf("conflict: %v", err)
	}
	_, err = a.CreateCard(ctx, issuer.CreateCardRequest{IdempotencyKey: "k2", Limits: []issuer.SpendLimit{{AmountMinor: 50, Interval: issuer.Daily}}})
	if !errors.Is(err, issuer.ErrInvalid) {
		t.Fatalf("sub-dollar limit: %v", err)
	}
}

// TestConcurrentCreatesConverge: retries racing with the same key end on one usable card.
func TestConcurrentCreatesConverge(t *testing.T) {
	srv, url := startSim(t)
	a := newAdapter(t, url)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := a.CreateCard(context.Background(), issuer.CreateCardRequest{IdempotencyKey: "race", Limits: []issuer.SpendLimit{{AmountMinor: 1000, Interval: issuer.AllTime}}})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = c.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("attempts returned different cards: %v", ids)
		}
	}
	if n := srv.Stats().CardsByState["active"]; n != 1 {
		t.Fatalf("%d active cards after racing creates, want 1", n)
	}
}

func TestAlreadyCanceledMessage(t *testing.T) {
	// The origin answers a second DELETE with a plain message and no code.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"Card is already canceled"}`))
	}))
	defer ts.Close()
	a := newAdapter(t, ts.URL)
	if _, err := a.CloseCard(context.Background(), "c1"); !errors.Is(err, issuer.ErrAlreadyClosed) {
		t.Fatalf("got %v", err)
	}
}
