package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/starter"
)

// Audit actions of the credential pull.
const (
	ActionReveal       = "card.reveal"
	ActionRevealDenied = "card.reveal_denied"
)

// cardResponse is the only response that ever carries a card number and CVC.
type cardResponse struct {
	AgentID    string `json:"agent_id"`
	CardID     string `json:"card_id"`
	Issuer     string `json:"issuer"`
	Generation int    `json:"generation"`
	Status     string `json:"status"`
	Last4      string `json:"last4"`
	Number     string `json:"number"`
	CVC        string `json:"cvc"`
	ExpMonth   int    `json:"exp_month"`
	ExpYear    int    `json:"exp_year"`
}

// revealCard: GET /v1/agents/{id}/card with the agent's own token. Answers the current card's
// number, CVC and expiry. The id was checked by agentPath; failed tokens are throttled per
// client address and per agent (429 before anything is read); every reveal is in the audit log
// before the response is written, and the reveal limit is claimed atomically with that entry.
// Unknown agents and wrong tokens get the same 401.
func (s *server) revealCard(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if s.ctl == nil || s.Store == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "credential pull is not configured", "")
		return
	}
	if wait, blocked := s.Throttle.Blocked(r, id); blocked {
		writeThrottled(w, wait)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	tok, _ := bearer(r)
	if err := s.ctl.VerifyToken(ctx, id, tok); err != nil {
		if !errors.Is(err, starter.ErrUnauthorized) {
			s.writeErr(w, r, err)
			return
		}
		s.Throttle.Failed(r, id)
		// Denials are audited too (a burst of them is someone guessing); the throttle bounds
		// how many rows a caller can write this way.
		s.audit(ctx, id, "unknown", ActionRevealDenied, "wrong or missing agent token from "+remoteIP(r))
		w.Header().Set("WWW-Authenticate", `Bearer realm="cardwarden-agent"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong agent token (Authorization: Bearer <agent token>)", "")
		return
	}
	if s.Vault == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "no vault key configured on this server (CARDWARDEN_VAULT_KEY)", "")
		return
	}
	card, err := s.Store.CurrentCard(ctx, id)
	if store.IsNotFound(err) {
		writeError(w, http.StatusNotFound, "no_card", "agent "+id+" has no open card right now (being issued, revoked or retired)", "")
		return
	} else if err != nil {
		s.writeErr(w, r, err)
		return
	}
	entry, err := s.Store.GetVaultEntry(ctx, card.Issuer, card.IssuerCardID)
	if store.IsNotFound(err) {
		writeError(w, http.StatusNotFound, "no_card", "the credentials of card ****"+card.Last4+" are not in the vault yet", "")
		return
	} else if err != nil {
		s.writeErr(w, r, err)
		return
	}
	sec, err := s.Vault.Open(entry)
	if err != nil {
		// The error names the card and the key id only (vault.Open never includes plaintext).
		s.writeErr(w, r, err)
		return
	}
	// No audit entry, no reveal: the entry is written only while the agent is under its
	// limit, in one transaction with the count, so concurrent pulls cannot overshoot it.
	detail := fmt.Sprintf("card ****%s (%s, generation %d) revealed to %s", card.Last4, card.IssuerCardID, card.Generation, remoteIP(r))
	now := s.Now()
	ok, err := s.Store.ClaimReveal(ctx, store.AuditEntry{At: now, Actor: "agent:" + id, Action: ActionReveal, AgentID: id, Detail: detail},
		s.RevealLimit, now.Add(-s.RevealWindow))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(s.RevealWindow.Seconds())))
		writeError(w, http.StatusTooManyRequests, "rate_limited",
			fmt.Sprintf("at most %d credential reveals per %s per agent", s.RevealLimit, s.RevealWindow), "")
		return
	}
	s.log(r).Info("card credentials revealed", "agent_id", id, "card_id", card.IssuerCardID, "last4", card.Last4, "remote", remoteIP(r))
	writeJSON(w, http.StatusOK, cardResponse{
		AgentID: id, CardID: card.IssuerCardID, Issuer: card.Issuer, Generation: card.Generation, Status: card.Status,
		Last4: card.Last4, Number: sec.Number, CVC: sec.CVC, ExpMonth: sec.ExpMonth, ExpYear: sec.ExpYear,
	})
}

func (s *server) audit(ctx context.Context, agentID, actor, action, detail string) {
	if err := s.Store.Audit(ctx, store.AuditEntry{At: s.Now(), Actor: actor, Action: action, AgentID: agentID, Detail: detail}); err != nil {
		s.Logger.Error("audit", "agent_id", agentID, "action", action, "error", err)
	}
}

// remoteIP is the peer address. Forwarding headers are not trusted: anyone can set them.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
