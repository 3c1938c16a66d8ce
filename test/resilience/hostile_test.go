//go:build resilience

package resilience

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/workflows"
)

// TestHostileWebhooks posts malformed, oversized, replayed and mis-signed webhooks to the real
// API handler, in front of a real workflow, and checks that none of them changes anything:
// the ledger, daily spend, the audit log and the agent's workflow state are exactly as they
// were after the one genuine event.
func TestHostileWebhooks(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.startInProcessWorker(0)
	const agent = "hostile-00"
	h.startAgents([]string{agent}, func(id string) workflows.Policy {
		return policy(id, "100", func(p *workflows.Policy) { p.RotateCron = workflows.RotateOff })
	})
	card := h.currentCards([]string{agent})[agent]

	// One genuine event: counted once.
	now := time.Now()
	genuine := approvedEvent("evt_genuine", card, 150, now)
	if code, body := h.postWebhook("evt_genuine", genuine, now, h.whKey); code != http.StatusOK {
		t.Fatalf("genuine webhook: %d %s", code, body)
	}
	h.eventually(30*time.Second, "genuine event counted", func() error {
		st, err := h.state(agent)
		if err != nil {
			return err
		}
		if st.Budget.SpentTodayUSD.Minor() != 150 {
			return fmt.Errorf("spent today %s", st.Budget.SpentTodayUSD)
		}
		return nil
	})
	before := h.snapshot(agent)

	type attack struct {
		name   string
		header http.Header
		body   []byte
		path   string
		method string
		want   int
	}
	signed := func(id string, body []byte, at time.Time, key []byte) http.Header {
		hd := http.Header{}
		stdwebhooks.Sign(hd, key, id, at, body)
		return hd
	}
	other := approvedEvent("evt_other", card, 99_999, now)
	tampered := bytes.Replace(genuine, []byte(`"amount_minor":150`), []byte(`"amount_minor":999999`), 1)
	huge := append(append([]byte(`{"id":"evt_huge","pad":"`), bytes.Repeat([]byte("a"), api.MaxWebhookBody)...), []byte(`"}`)...)
	stale, future := now.Add(-6*time.Minute), now.Add(6*time.Minute)
	attacks := []attack{
		{name: "malformed JSON, validly signed", header: signed("evt_bad", []byte(`{"id":"evt_bad",`), now, h.whKey), body: []byte(`{"id":"evt_bad",`), want: 400},
		{name: "JSON that is not an event, validly signed", header: signed("evt_arr", []byte(`[1,2,3]`), now, h.whKey), body: []byte(`[1,2,3]`), want: 400},
		{name: "oversized body, validly signed", header: signed("evt_huge", huge, now, h.whKey), body: huge, want: 413},
		{name: "signed with another key", header: signed("evt_other", other, now, []byte("not the secret")), body: other, want: 401},
		{name: "genuine signature over a tampered body", header: signed("evt_genuine", genuine, now, h.whKey), body: tampered, want: 401},
		{name: "stale timestamp (6 minutes old)", header: signed("evt_other", other, stale, h.whKey), body: other, want: 401},
		{name: "timestamp 6 minutes in the future", header: signed("evt_other", other, future, h.whKey), body: other, want: 401},
		{name: "no signature headers", header: http.Header{}, body: other, want: 401},
		{name: "signature header of garbage", header: http.Header{"Webhook-Id": {"evt_other"}, "Webhook-Timestamp": {"abc"}, "Webhook-Signature": {"v1,!!!"}}, body: other, want: 401},
		{name: "webhook-id not the event's id", header: signed("evt_not_other", other, now, h.whKey), body: other, want: 400},
		{name: "replay of the genuine delivery, same bytes", header: signed("evt_genuine", genuine, now, h.whKey), body: genuine, want: 200},
		{name: "replay of the genuine event, fresh signature", header: signed("evt_genuine", genuine, time.Now(), h.whKey), body: genuine, want: 200},
		{name: "unconfigured issuer", header: signed("evt_other", other, now, h.whKey), body: other, path: "/v1/webhooks/stripe", want: 404},
		{name: "GET instead of POST", header: signed("evt_other", other, now, h.whKey), body: nil, method: http.MethodGet, want: 405},
	}
	for _, a := range attacks {
		path, method := a.path, a.method
		if path == "" {
			path = "/v1/webhooks/sim"
		}
		if method == "" {
			method = http.MethodPost
		}
		req, err := http.NewRequestWithContext(h.ctx, method, h.apiURL+path, bytes.NewReader(a.body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range a.header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != a.want {
			t.Errorf("%s: %d %s, want %d", a.name, resp.StatusCode, strings.TrimSpace(string(b)), a.want)
		}
		if resp.StatusCode == http.StatusOK && !strings.Contains(string(b), `"duplicates":1`) {
			t.Errorf("%s: accepted as something other than a duplicate: %s", a.name, b)
		}
	}
	// Issue 12: paths the router must not trust, headers that carry two timestamps, and
	// genuinely signed amounts at the int64 limits.
	post := func(name, rawPath string, header http.Header, body []byte) (int, string) {
		req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, h.apiURL+"/", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = rawPath
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	longName := strings.Repeat("x", 50_000)
	for _, p := range []struct{ name, path string }{
		{"invalid UTF-8 issuer name", "/v1/webhooks/%ff%fe"},
		{"overlong UTF-8 issuer name", "/v1/webhooks/%c0%af"},
		{"NUL in the issuer name", "/v1/webhooks/si%00m"},
		{"oversized issuer name", "/v1/webhooks/" + longName},
		{"invalid UTF-8 agent id on the credential pull", "/v1/agents/%ff%fe/card"},
	} {
		code, body := post(p.name, p.path, signed("evt_other", other, now, h.whKey), other)
		if code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d %.200s, want 404", p.name, code, body)
		}
		if strings.Contains(body, longName[:64]) {
			t.Errorf("%s: the answer repeats the path", p.name)
		}
	}
	twoTimestamps := signed("evt_other", other, now, h.whKey)
	twoTimestamps["Webhook-Timestamp"] = append([]string{fmt.Sprint(stale.Unix())}, twoTimestamps["Webhook-Timestamp"]...)
	staleSigned := signed("evt_other", other, stale, h.whKey)
	staleSigned.Add("Webhook-Timestamp", fmt.Sprint(now.Unix()))
	twoIDs := signed("evt_other", other, now, h.whKey)
	twoIDs.Add("Webhook-Id", "evt_genuine")
	for name, hd := range map[string]http.Header{
		"two timestamps, the fresh one signed":       twoTimestamps,
		"stale signed timestamp, a fresh one second": staleSigned,
		"two webhook ids":                            twoIDs,
	} {
		if code, body := post(name, "/v1/webhooks/sim", hd, other); code != http.StatusUnauthorized {
			t.Errorf("%s: %d %.200s, want 401", name, code, body)
		}
	}
	for i, amount := range []int64{math.MaxInt64, math.MinInt64, -1, math.MaxInt64 / 100} {
		id := fmt.Sprintf("evt_limit_%d", i)
		ev := approvedEvent(id, card, amount, now)
		if code, body := post("amount "+fmt.Sprint(amount), "/v1/webhooks/sim", signed(id, ev, now, h.whKey), ev); code != 400 && code != 422 {
			t.Errorf("genuinely signed amount %d: %d %.200s, want 400 or 422 (nothing recorded)", amount, code, body)
		}
	}
	// A policy whose credentials would go to an internal address, a metadata service, plain
	// http or a URL with credentials is refused before any agent or card exists.
	for _, u := range []string{"https://127.0.0.1:9/cards", "https://169.254.169.254/latest", "http://agent.example.com/cards",
		"https://[::ffff:10.0.0.1]/cards", "https://u:p@agent.example.com/cards"} {
		body, _ := json.Marshal(map[string]any{"agent_id": "hostile-push", "daily_limit_usd": 5, "credentials_push_url": u})
		req, _ := http.NewRequestWithContext(h.ctx, http.MethodPost, h.apiURL+"/v1/agents", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+h.adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 422 || !strings.Contains(string(b), "policy.credentials_push_url") {
			t.Errorf("push URL %s: %d %s, want 422 naming policy.credentials_push_url", u, resp.StatusCode, b)
		}
	}

	time.Sleep(2 * time.Second) // anything wrongly signalled would land now
	h.compareSnapshot(t, agent, before)

	// A genuinely signed event that names no card cannot be recorded; it must be refused as the
	// sender's error (4xx), not answered 5xx, which would make the issuer retry it forever.
	t.Run("signed event without a card", func(t *testing.T) {
		noCard := []byte(`{"id":"evt_nocard","type":"authorization.created","created_at":"` + now.UTC().Format(time.RFC3339Nano) +
			`","data":{"approved":true,"amount_minor":100,"currency":"usd"}}`)
		code, body := h.postWebhook("evt_nocard", noCard, time.Now(), h.whKey)
		if code < 400 || code >= 500 {
			t.Errorf("%d %s, want a 4xx: a 5xx makes the issuer redeliver a poison event forever", code, strings.TrimSpace(body))
		}
		h.compareSnapshot(t, agent, before)
	})

	// The webhook is answered before its event reaches the workflow, and an agent's events
	// that arrive together share a signal: a new event delivered 32 times at once (as an issuer
	// retrying a slow answer does), beside 16 forgeries of it with a raised amount, is counted
	// exactly once everywhere, and the forgeries nowhere.
	t.Run("parallel replays and forgeries of a new event", func(t *testing.T) {
		at := time.Now()
		race := approvedEvent("evt_race", card, 275, at)
		forged := bytes.Replace(race, []byte(`"amount_minor":275`), []byte(`"amount_minor":27500`), 1)
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[string]int{}
		for i := range 48 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				kind, code := "genuine", 0
				switch {
				case i%3 != 2:
					code, _ = h.postWebhook("evt_race", race, at, h.whKey)
				case i%2 == 0: // signed with the wrong key
					kind = "forged"
					code, _ = h.postWebhook("evt_race", forged, at, []byte("not the secret"))
				default: // the genuine signature over the forged body
					kind = "forged"
					req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, h.apiURL+"/v1/webhooks/sim", bytes.NewReader(forged))
					if err != nil {
						t.Error(err)
						return
					}
					req.Header = signed("evt_race", race, at, h.whKey)
					if resp, err := http.DefaultClient.Do(req); err == nil {
						code = resp.StatusCode
						resp.Body.Close()
					}
				}
				mu.Lock()
				codes[fmt.Sprintf("%s %d", kind, code)]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if want := map[string]int{"genuine 200": 32, "forged 401": 16}; !maps.Equal(codes, want) {
			t.Errorf("answers %v, want %v", codes, want)
		}
		want := before
		want.ledger++
		want.spent += 275
		want.wfSpent += 275
		h.eventually(30*time.Second, "the raced event counted once", func() error {
			got := h.snapshot(agent)
			got.signals, want.signals = 0, 0
			if got != want {
				return fmt.Errorf("state %+v, want %+v", got, want)
			}
			return nil
		})
		time.Sleep(2 * time.Second) // a second count, were there one, would land now
		got := h.snapshot(agent)
		got.signals = 0
		if got != want {
			t.Errorf("after the race settled: %+v, want %+v", got, want)
		}
		var rows int
		if err := h.st.DB().GetContext(h.ctx, &rows, h.st.DB().Rebind(`SELECT count(*) FROM ledger_events WHERE issuer_event_id = ? AND amount_minor = ? AND signalled_at IS NOT NULL`), "evt_race", 275); err != nil || rows != 1 {
			t.Errorf("ledger rows of evt_race at 2.75, signalled: %d %v", rows, err)
		}
	})
}

type stateSnapshot struct {
	ledger, audit           int
	spent, wfSpent, signals int64
	status                  workflows.Status
	generation              int
}

func (h *harness) snapshot(agent string) stateSnapshot {
	h.t.Helper()
	var s stateSnapshot
	var err error
	if s.ledger, err = countRows(h, `SELECT count(*) FROM ledger_events`); err != nil {
		h.t.Fatal(err)
	}
	if s.audit, err = countRows(h, `SELECT count(*) FROM audit_log`); err != nil {
		h.t.Fatal(err)
	}
	if err := h.st.DB().GetContext(h.ctx, &s.spent, `SELECT COALESCE(SUM(spent_minor), 0) FROM daily_spend`); err != nil {
		h.t.Fatal(err)
	}
	st, err := h.state(agent)
	if err != nil {
		h.t.Fatal(err)
	}
	s.signals, s.status, s.generation = st.SignalsTotal, st.Status, st.Generation
	s.wfSpent = st.Budget.SpentTodayUSD.Minor()
	return s
}

func (h *harness) compareSnapshot(t *testing.T, agent string, before stateSnapshot) {
	t.Helper()
	after := h.snapshot(agent)
	// The replays of the genuine event may be signalled again (the workflow ignores an event id
	// it has seen), so the signal count may grow; nothing else may change.
	after.signals, before.signals = 0, 0
	if after != before {
		t.Errorf("state changed:\nbefore %+v\n after %+v", before, after)
	}
}
