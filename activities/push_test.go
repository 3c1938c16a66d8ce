package activities_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/workflows"
)

// The agent receives its new card signed with the SHA-256 of its own token; a receiver that
// fails at first gets it on retry, and a 4xx is final.
func TestPushCredentialsIsSignedForTheAgentAndRetried(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		const token = "cwa_test-token"
		sum := sha256.Sum256([]byte(token))
		if err := st.SetAgentTokenHash(t.Context(), "demo", hex.EncodeToString(sum[:])); err != nil {
			t.Fatal(err)
		}
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
			// What the agent does: verify with sha256(its token).
			if _, err := stdwebhooks.Verify(sum[:], r.Header, body, time.Now(), 5*time.Minute); err != nil {
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

		in := workflows.PushCredentialsInput{AgentID: "demo", Issuer: "sim", CardID: card.ID, Generation: 1, URL: receiver.URL}
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

		status = []int{http.StatusGone}
		err = w.exec(t, w.acts.PushCredentials, in, nil)
		if err == nil || !appError(t, err).NonRetryable() {
			t.Fatalf("a 410 is final, got %v", err)
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
