package activities_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/internal/vault"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// givePushKey stores the agent's sealed push key as issuing token would (starter.IssueToken).
func givePushKey(t *testing.T, w *world, agentID, token string) {
	t.Helper()
	if err := w.store.ReplaceAgentToken(t.Context(), store.Agent{AgentID: agentID}, starter.HashToken(token)); err != nil {
		t.Fatal(err)
	}
	k, err := w.vault.SealPushKey(agentID, starter.PushKey(token))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.store.PutPushKey(t.Context(), k); err != nil {
		t.Fatal(err)
	}
}

// The agent receives its new card signed with the push key it derives from its own token; a
// receiver that fails at first gets it on retry, and a 4xx is final.
func TestPushCredentialsIsSignedForTheAgentAndRetried(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		const token = "cwa_test-token"
		givePushKey(t, w, "demo", token)
		card := w.issue(t, 1)
		secrets, err := w.iss.RevealCard(t.Context(), card.ID)
		if err != nil {
			t.Fatal(err)
		}

		var mu sync.Mutex
		status := []int{http.StatusServiceUnavailable, http.StatusOK}
		var got []activities.CredentialsPush
		receiver := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			// What the agent does: verify with the key it derives from its token.
			if _, err := stdwebhooks.Verify(starter.PushKey(token), r.Header, body, time.Now(), 5*time.Minute); err != nil {
				t.Errorf("signature: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			var p activities.CredentialsPush
			_ = json.Unmarshal(body, &p)
			got = append(got, p)
			code := status[0]
			if len(status) > 1 {
				status = status[1:]
			}
			rw.WriteHeader(code)
		}))
		defer receiver.Close()

		in := workflows.PushCredentialsInput{AgentID: "demo", Issuer: "sim", CardID: card.ID, Generation: 1, URL: receiver.URL + "/cards?key=q-secret"}
		err = w.exec(t, w.acts.PushCredentials, in, nil)
		if err == nil || appError(t, err).NonRetryable() {
			t.Fatalf("a 503 must be a retryable failure, got %v", err)
		}
		if err := w.exec(t, w.acts.PushCredentials, in, nil); err != nil {
			t.Fatalf("second attempt: %v", err)
		}
		if len(got) != 2 || got[1].Number != secrets.Number || got[1].CVC != secrets.CVC || got[1].Generation != 1 {
			t.Fatalf("receiver got %d pushes, last for generation %d", len(got), got[len(got)-1].Generation)
		}
		audit, err := st.ListAudit(t.Context(), "demo", 10)
		if err != nil || len(audit) == 0 || audit[0].Action != "credentials-pushed" {
			t.Fatalf("audit: %v %+v", err, audit)
		}
		if strings.Contains(audit[0].Detail, "q-secret") {
			t.Fatalf("the audit log holds the push URL's query: %q", audit[0].Detail)
		}

		status = []int{http.StatusGone}
		err = w.exec(t, w.acts.PushCredentials, in, nil)
		if err == nil || !appError(t, err).NonRetryable() {
			t.Fatalf("a 410 is final, got %v", err)
		}
	})
}

// Issue 12, item 10: the push HMAC key was the stored token_hash, so read access to the
// database was enough to forge a push. A push signed with the token hash must not verify for
// the agent, and the database holds nothing that opens the push key without the vault key.
func TestPushKeyIsNotInTheDatabase(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		const token = "cwa_db-reader-test-token"
		givePushKey(t, w, "demo", token)
		row, err := st.GetAgent(t.Context(), "demo")
		if err != nil {
			t.Fatal(err)
		}
		// The attacker's forgery: sign with what the database shows.
		forgedKey, _ := hex.DecodeString(row.TokenHash)
		body := []byte(`{"agent_id":"demo","number":"4000000000000002","cvc":"123"}`)
		h := http.Header{}
		stdwebhooks.Sign(h, forgedKey, "cred_forged", time.Now(), body)
		if _, err := stdwebhooks.Verify(starter.PushKey(token), h, body, time.Now(), 5*time.Minute); err == nil {
			t.Fatal("a push signed with the stored token hash verifies for the agent")
		}
		sealed, err := st.GetPushKey(t.Context(), "demo")
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(sealed.Ciphertext, starter.PushKey(token)) || bytes.Equal(forgedKey, starter.PushKey(token)) {
			t.Fatal("the push key is stored in the clear")
		}
		other, _ := vault.New(bytes.Repeat([]byte{9}, vault.KeySize))
		if _, err := other.OpenPushKey(sealed); err == nil {
			t.Fatal("the sealed push key opens without the vault key")
		}
	})
}

// Issue 12, item 3: a push URL that redirects, or that points at an internal address, never
// receives (or re-sends) the card: refused, not retried, nothing delivered elsewhere.
func TestPushCredentialsRefusesRedirectsAndInternalTargets(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		givePushKey(t, w, "demo", "cwa_redirect-test-token")
		card := w.issue(t, 1)
		var stolen atomic.Int32
		thief := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { stolen.Add(1) }))
		defer thief.Close()
		redirector := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			http.Redirect(rw, r, thief.URL+"/loot", http.StatusTemporaryRedirect)
		}))
		defer redirector.Close()
		in := workflows.PushCredentialsInput{AgentID: "demo", Issuer: "sim", CardID: card.ID, Generation: 1, URL: redirector.URL}
		if err := w.exec(t, w.acts.PushCredentials, in, nil); err == nil || !appError(t, err).NonRetryable() {
			t.Fatalf("a redirect must be a final refusal, got %v", err)
		}
		if stolen.Load() != 0 {
			t.Fatal("the card was re-posted to the redirect target")
		}

		// The production rules: the loopback receiver is not reachable, by address or by name.
		w.acts.HTTPClient = nil
		for _, u := range []string{thief.URL, strings.Replace(thief.URL, "127.0.0.1", "localhost", 1), "https://169.254.169.254/latest", "https://user:pw@agent.example/"} {
			in.URL = u
			if err := w.exec(t, w.acts.PushCredentials, in, nil); err == nil || !appError(t, err).NonRetryable() {
				t.Fatalf("%s: want a final refusal, got %v", u, err)
			}
		}
		if stolen.Load() != 0 {
			t.Fatal("the card reached a loopback receiver under the production rules")
		}
	})
}

// Issue 12, item 9: alerts to a policy's own alerts.webhook_url went out unsigned. Without a
// process-wide secret they are signed with the agent's push key; with neither, they are not
// sent at all.
func TestAgentAlertWebhookIsSigned(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		var mu sync.Mutex
		var unsigned, signed int
		const token = "cwa_alert-signing-token"
		hook := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			defer mu.Unlock()
			if _, err := stdwebhooks.Verify(starter.PushKey(token), r.Header, body, time.Now(), 5*time.Minute); err != nil {
				unsigned++
			} else {
				signed++
			}
		}))
		defer hook.Close()
		in := workflows.AlertInput{AgentID: "demo", Kind: "frozen", Period: "gen1-freeze1", Message: "card frozen", WebhookURL: hook.URL, At: time.Now()}
		if err := w.exec(t, w.acts.SendAlert, in, nil); err == nil || !appError(t, err).NonRetryable() {
			t.Fatalf("an alert nothing can sign must be refused, got %v", err)
		}
		givePushKey(t, w, "demo", token)
		in.Period = "gen1-freeze2"
		if err := w.exec(t, w.acts.SendAlert, in, nil); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if unsigned != 0 || signed != 1 {
			t.Fatalf("receiver saw %d unsigned and %d signed alerts; want 0 and 1", unsigned, signed)
		}
	})
}

// Without a token there is nothing only the agent could verify: refuse, do not send.
func TestPushCredentialsNeedsAnAgentToken(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		card := w.issue(t, 1)
		called := false
		receiver := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
		defer receiver.Close()
		err := w.exec(t, w.acts.PushCredentials, workflows.PushCredentialsInput{AgentID: "demo", Issuer: "sim", CardID: card.ID, Generation: 1, URL: receiver.URL}, nil)
		if err == nil || !appError(t, err).NonRetryable() || called {
			t.Fatalf("want a non-retryable refusal and no request, got %v (called %v)", err, called)
		}
	})
}
