package activities_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/sim"
	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/internal/ledger"
	"github.com/cardwarden/cardwarden/internal/outbound"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/internal/vault"
	"github.com/cardwarden/cardwarden/workflows"
)

// world is the activities wired to a real store, a simulator over HTTP and a vault.
type world struct {
	acts   *activities.Activities
	store  *store.Store
	vault  *vault.Vault
	simURL string
	iss    *sim.Adapter
	env    *testsuite.TestActivityEnvironment
}

func newWorld(t *testing.T, st *store.Store) *world {
	t.Helper()
	srv, err := issuersim.NewServer(issuersim.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	adapter, err := sim.New(sim.Config{BaseURL: hs.URL, APIKey: issuersim.DefaultAPIKey})
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(bytes.Repeat([]byte{7}, vault.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	acts := &activities.Activities{
		Issuers: issuer.NewRegistry(adapter), Store: st, Vault: v,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		// The receivers of these tests are plain http on loopback: the dev rules.
		HTTPClient: outbound.NewClient(outbound.Dev(), outbound.Options{}),
	}
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &world{acts: acts, store: st, vault: v, simURL: hs.URL, iss: adapter, env: env}
}

// exec runs an activity through the SDK, so errors arrive as the workflow would see them.
func (w *world) exec(t *testing.T, fn any, in any, out any) error {
	t.Helper()
	val, err := w.env.ExecuteActivity(fn, in)
	if err != nil {
		return err
	}
	if out != nil && val != nil && val.HasValue() {
		if err := val.Get(out); err != nil {
			t.Fatal(err)
		}
	}
	return nil
}

func (w *world) agent(t *testing.T, policy string) workflows.Policy {
	t.Helper()
	p, err := workflows.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.exec(t, w.acts.UpsertAgent, workflows.UpsertAgentInput{Policy: p, Status: workflows.StatusActive}, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

func (w *world) issue(t *testing.T, gen int) workflows.IssuedCard {
	t.Helper()
	var card workflows.IssuedCard
	if err := w.exec(t, w.acts.IssueCard, issueInput(gen), &card); err != nil {
		t.Fatal(err)
	}
	return card
}

func issueInput(gen int) workflows.IssueCardInput {
	return workflows.IssueCardInput{
		AgentID: "demo", Issuer: "sim", Label: "demo", Currency: "USD", Generation: gen,
		IdempotencyKey: workflows.IdempotencyKey("agent/demo", gen), DailyLimitMinor: 2500, Reason: "initial",
		Limits: []issuer.SpendLimit{{AmountMinor: 2500, Interval: issuer.AllTime}},
	}
}

// record writes an event to the ledger as the webhook path does.
func (w *world) record(t *testing.T, ev cardwarden.Event) {
	t.Helper()
	if _, err := (&ledger.Ledger{Store: w.store}).Record(context.Background(), ev, store.SourceWebhook); err != nil {
		t.Fatal(err)
	}
}

// simCall makes a raw request to the simulator (purchases are not part of the adapter).
func (w *world) simCall(t *testing.T, path string, body any, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, w.simURL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+issuersim.DefaultAPIKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, res.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

func appError(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		t.Fatalf("want an ApplicationError, got %v", err)
	}
	return appErr
}

func TestIssueCardVaultsSecretsAndIsIdempotent(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		card := w.issue(t, 1)
		again := w.issue(t, 1)
		if card.ID == "" || again.ID != card.ID || len(card.Last4) != 4 {
			t.Fatalf("retried issue gave another card: %+v vs %+v", card, again)
		}
		cards, err := st.ListCards(context.Background(), "demo")
		if err != nil || len(cards) != 1 || cards[0].IssuerCardID != card.ID || cards[0].Generation != 1 || cards[0].DailyLimitMinor != 2500 {
			t.Fatalf("store cards: %+v, %v", cards, err)
		}
		entry, err := st.GetVaultEntry(context.Background(), "sim", card.ID)
		if err != nil {
			t.Fatal(err)
		}
		secrets, err := w.vault.Open(entry)
		if err != nil {
			t.Fatal(err)
		}
		if len(secrets.Number) < 15 || !strings.HasSuffix(secrets.Number, card.Last4) || secrets.CVC == "" {
			t.Fatalf("vaulted secrets do not belong to the card")
		}
		// Nothing the workflow receives (and so nothing in its history) holds the number.
		out, _ := json.Marshal(card)
		if bytes.Contains(out, []byte(secrets.Number)) || bytes.Contains(entry.Ciphertext, []byte(secrets.Number)) {
			t.Fatal("card number leaked")
		}
		// The issuer got the limit.
		c, err := w.iss.GetCard(context.Background(), card.ID)
		if err != nil || len(c.Limits) != 1 || c.Limits[0].AmountMinor != 2500 {
			t.Fatalf("issuer card: %+v %v", c, err)
		}
		// Same key, different body: the issuer refuses, and so does the activity, for good.
		in := issueInput(1)
		in.Limits[0].AmountMinor = 9999
		err = w.exec(t, w.acts.IssueCard, in, nil)
		if e := appError(t, err); e.Type() != workflows.ErrTypeIssuerConflict || !e.NonRetryable() {
			t.Fatalf("conflict: %v", err)
		}
		// A later workflow for the same agent continues the generations.
		var snap workflows.AgentSnapshot
		p, _ := workflows.ParsePolicy([]byte(`{"agent_id":"demo","daily_limit_usd":25}`))
		if err := w.exec(t, w.acts.UpsertAgent, workflows.UpsertAgentInput{Policy: p, Status: workflows.StatusActive}, &snap); err != nil {
			t.Fatal(err)
		}
		if snap.LastGeneration != 1 || len(snap.OpenCards) != 1 || snap.OpenCards[0].ID != card.ID {
			t.Fatalf("snapshot: %+v", snap)
		}
	})
}

func TestCardActionsReachIssuerAndStore(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		card := w.issue(t, 1)
		act := workflows.CardActionInput{AgentID: "demo", Issuer: "sim", CardID: card.ID, Reason: "test"}
		limits := []issuer.SpendLimit{{AmountMinor: 4000, Interval: issuer.AllTime}}
		if err := w.exec(t, w.acts.UpdateLimit, workflows.UpdateLimitInput{AgentID: "demo", Issuer: "sim", CardID: card.ID, Limits: limits, DailyLimitMinor: 4000}, nil); err != nil {
			t.Fatal(err)
		}
		if c, _ := w.iss.GetCard(ctx, card.ID); c.Limits[0].AmountMinor != 4000 {
			t.Fatalf("limit at issuer: %+v", c.Limits)
		}
		if c, _ := st.CardByIssuerID(ctx, "sim", card.ID); c.DailyLimitMinor != 4000 {
			t.Fatalf("limit in store: %d", c.DailyLimitMinor)
		}
		for _, step := range []struct {
			fn   any
			want string
		}{{w.acts.PauseCard, "paused"}, {w.acts.ResumeCard, "active"}, {w.acts.CloseCard, "closed"}, {w.acts.CloseCard, "closed"}} {
			if err := w.exec(t, step.fn, act, nil); err != nil {
				t.Fatalf("%s: %v", step.want, err)
			}
			if c, _ := st.CardByIssuerID(ctx, "sim", card.ID); c.Status != step.want {
				t.Fatalf("store status %q, want %q", c.Status, step.want)
			}
			if c, _ := w.iss.GetCard(ctx, card.ID); string(c.Status) != step.want {
				t.Fatalf("issuer status %q, want %q", c.Status, step.want)
			}
		}
		// Resuming a closed card is a permanent failure, not something to retry.
		err := w.exec(t, w.acts.ResumeCard, act, nil)
		if e := appError(t, err); !e.NonRetryable() {
			t.Fatalf("resume closed card: %v", err)
		}
		// Closing a card the issuer never heard of reaches the goal state: success.
		if err := w.exec(t, w.acts.CloseCard, workflows.CardActionInput{AgentID: "demo", Issuer: "sim", CardID: "card_nope"}, nil); err != nil {
			t.Fatalf("close unknown card: %v", err)
		}
		err = w.exec(t, w.acts.PauseCard, workflows.CardActionInput{AgentID: "demo", Issuer: "sim", CardID: "card_nope"}, nil)
		if e := appError(t, err); e.Type() != workflows.ErrTypeIssuerNotFound || !e.NonRetryable() {
			t.Fatalf("pause unknown card: %v", err)
		}
		err = w.exec(t, w.acts.IssuerInfo, workflows.IssuerInfoInput{Issuer: "stripe"}, nil)
		if e := appError(t, err); e.Type() != workflows.ErrTypeIssuerNotConfigured || !e.NonRetryable() || !strings.Contains(e.Error(), `issuer "stripe" is not configured`) {
			t.Fatalf("unconfigured issuer: %v", err)
		}
	})
}

func TestReconcileFindsMissedEventsAndDifferences(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		card := w.issue(t, 1)
		since := time.Now().Add(-time.Minute)
		var events []cardwarden.Event
		for _, amt := range []int64{500, 700, 900} {
			var r struct {
				EventID string `json:"event_id"`
			}
			w.simCall(t, "/v1/simulate/authorizations", map[string]any{"card_id": card.ID, "amount_minor": amt}, &r)
			evs, err := w.iss.ListAuthorizations(ctx, card.ID, since)
			if err != nil {
				t.Fatal(err)
			}
			events = evs
		}
		if len(events) != 3 {
			t.Fatalf("issuer events: %d", len(events))
		}
		// The webhook delivered the first correctly, the second with a different amount,
		// and never the third.
		wrong := events[1]
		wrong.AmountMinor = 7
		w.record(t, events[0])
		w.record(t, wrong)
		in := workflows.ReconcileInput{AgentID: "demo", Issuer: "sim", Timezone: "UTC", CardIDs: []string{card.ID}, Since: since}
		var res workflows.ReconcileResult
		if err := w.exec(t, w.acts.Reconcile, in, &res); err != nil {
			t.Fatal(err)
		}
		if res.Checked != 3 || len(res.Missed) != 1 || res.Missed[0].ID != events[2].ID || len(res.Mismatches) != 1 {
			t.Fatalf("reconcile: %+v", res)
		}
		if m := res.Mismatches[0]; m.EventID != events[1].ID || m.LedgerAmountMinor != 7 || m.IssuerAmountMinor != 700 {
			t.Fatalf("mismatch: %+v", m)
		}
		row, err := st.GetEvent(ctx, "sim", events[2].ID)
		if err != nil || row.Source != store.SourceReconcile || row.AgentID != "demo" || row.AmountMinor != 900 {
			t.Fatalf("missed event row: %+v %v", row, err)
		}
		audit, _ := st.ListAudit(ctx, "demo", 10)
		if len(audit) == 0 || audit[0].Action != "reconcile-mismatch" {
			t.Fatalf("mismatch not audited: %+v", audit)
		}
		// Running it again finds nothing new.
		var again workflows.ReconcileResult
		if err := w.exec(t, w.acts.Reconcile, in, &again); err != nil || len(again.Missed) != 0 || again.Checked != 3 {
			t.Fatalf("second reconcile: %+v %v", again, err)
		}
	})
}

func TestSendAlertOncePerPeriod(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		var mu sync.Mutex
		var got []map[string]any
		var keys []string
		status := http.StatusOK
		hook := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			var body map[string]any
			_ = json.NewDecoder(r.Body).Decode(&body)
			got = append(got, body)
			keys = append(keys, r.Header.Get("Idempotency-Key"))
			rw.WriteHeader(status)
		}))
		defer hook.Close()
		givePushKey(t, w, "demo", "cwa_alert-test-token")
		in := workflows.AlertInput{AgentID: "demo", Kind: "frozen", Period: "gen1-freeze1", Message: "card frozen", WebhookURL: hook.URL, At: time.Now()}
		var res workflows.AlertResult
		if err := w.exec(t, w.acts.SendAlert, in, &res); err != nil || !res.Delivered || res.Duplicate {
			t.Fatalf("send: %+v %v", res, err)
		}
		if err := w.exec(t, w.acts.SendAlert, in, &res); err != nil || !res.Duplicate {
			t.Fatalf("resend: %+v %v", res, err)
		}
		mu.Lock()
		if len(got) != 1 || got[0]["kind"] != "frozen" || got[0]["agent_id"] != "demo" || keys[0] != "demo/frozen/gen1-freeze1" {
			t.Fatalf("webhook saw %v %v", got, keys)
		}
		status = http.StatusServiceUnavailable
		mu.Unlock()

		in.Period = "gen1-freeze2"
		err := w.exec(t, w.acts.SendAlert, in, nil)
		if e := appError(t, err); e.NonRetryable() {
			t.Fatalf("a 503 must be retried: %v", err)
		}
		mu.Lock()
		status = http.StatusBadRequest
		mu.Unlock()
		in.Period = "gen1-freeze3"
		if e := appError(t, w.exec(t, w.acts.SendAlert, in, nil)); !e.NonRetryable() {
			t.Fatalf("a 400 must not be retried: %v", e)
		}

		// Without a webhook the stored row is the delivery.
		in = workflows.AlertInput{AgentID: "demo", Kind: "threshold-80", Period: "2027-01-04", Message: "80%"}
		if err := w.exec(t, w.acts.SendAlert, in, &res); err != nil || !res.Delivered {
			t.Fatalf("no sink: %+v %v", res, err)
		}
		alerts, _ := st.ListAlerts(ctx, "demo", 10)
		byPeriod := map[string]store.Alert{}
		for _, a := range alerts {
			byPeriod[a.Period] = a
		}
		if a := byPeriod["2027-01-04"]; a.Status != store.AlertSent || a.Attempts != 1 {
			t.Fatalf("no-sink alert row: %+v", a)
		}
		if a := byPeriod["gen1-freeze2"]; a.Status != store.AlertPending || a.Attempts != 1 {
			t.Fatalf("failed alert row: %+v", a)
		}
	})
}

func TestIssuerErrorMapping(t *testing.T) {
	cases := []struct {
		err       error
		typ       string
		retryable bool
		delay     time.Duration
	}{
		{&issuer.Error{Kind: issuer.KindRateLimited, Op: "create_card", RetryAfter: 7 * time.Second}, workflows.ErrTypeIssuerRateLimited, true, 7 * time.Second},
		{&issuer.Error{Kind: issuer.KindTransient, Op: "create_card"}, workflows.ErrTypeIssuerTransient, true, 0},
		{errors.New("dial tcp: connection refused"), workflows.ErrTypeIssuerTransient, true, 0},
		{&issuer.Error{Kind: issuer.KindInvalid}, workflows.ErrTypeIssuerInvalid, false, 0},
		{&issuer.Error{Kind: issuer.KindNotFound}, workflows.ErrTypeIssuerNotFound, false, 0},
		{&issuer.Error{Kind: issuer.KindAlreadyClosed}, workflows.ErrTypeIssuerAlreadyClosed, false, 0},
		{&issuer.Error{Kind: issuer.KindUnauthorized}, workflows.ErrTypeIssuerUnauthorized, false, 0},
		{&issuer.Error{Kind: issuer.KindNotSupported}, workflows.ErrTypeIssuerNotSupported, false, 0},
		{&issuer.Error{Kind: issuer.KindIdempotencyConflict}, workflows.ErrTypeIssuerConflict, false, 0},
	}
	for _, c := range cases {
		e := appError(t, activities.IssuerError("op", c.err))
		if e.Type() != c.typ || e.NonRetryable() == c.retryable || e.NextRetryDelay() != c.delay {
			t.Errorf("%v: type %s retryable %v delay %s; want %s %v %s", c.err, e.Type(), !e.NonRetryable(), e.NextRetryDelay(), c.typ, c.retryable, c.delay)
		}
	}
}
