package starter

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/workflows"
)

// TokenPrefix starts every agent credential-pull token, so a leaked one is recognizable to
// secret scanners.
const TokenPrefix = "cwa_"

// NewToken returns a fresh agent token: 256 random bits.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate agent token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken is what the store keeps of a token: its SHA-256, hex. A fast hash is enough for
// 256-bit random tokens, which cannot be guessed however fast each guess is checked.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// IssueToken gives the agent a token unless it already has one, returning the new token or ""
// when the agent keeps its existing one. The agent's row is created if the workflow has not
// recorded it yet. actor is recorded in the audit log.
func (c *Client) IssueToken(ctx context.Context, p workflows.Policy, actor string) (string, error) {
	if c.store == nil {
		return "", &Error{Kind: ErrNoStore, Op: "issue token", AgentID: p.AgentID}
	}
	tok, err := NewToken()
	if err != nil {
		return "", err
	}
	claimed, err := c.store.ClaimAgentToken(ctx, agentRow(p), HashToken(tok))
	if err != nil {
		return "", fmt.Errorf("issue token of agent %s: %w", p.AgentID, err)
	}
	if !claimed {
		return "", nil
	}
	if err := c.storePushKey(ctx, p.AgentID, tok); err != nil {
		return "", err
	}
	c.audit(ctx, p.AgentID, actor, "token.issue", "credential-pull token issued")
	return tok, nil
}

// RotateToken replaces the agent's token with a new one and returns it; the old token stops
// working at once. actor is recorded in the audit log.
func (c *Client) RotateToken(ctx context.Context, agentID, actor string) (string, error) {
	if err := checkAgentID("rotate token", agentID); err != nil {
		return "", err
	}
	if c.store == nil {
		return "", &Error{Kind: ErrNoStore, Op: "rotate token", AgentID: agentID}
	}
	row, err := c.store.GetAgent(ctx, agentID)
	if store.IsNotFound(err) {
		// The workflow may not have recorded the agent yet; its state has everything needed.
		st, serr := c.State(ctx, agentID)
		if serr != nil {
			return "", serr
		}
		row = agentRow(st.Policy)
	} else if err != nil {
		return "", fmt.Errorf("rotate token of agent %s: %w", agentID, err)
	}
	tok, err := NewToken()
	if err != nil {
		return "", err
	}
	if err := c.store.ReplaceAgentToken(ctx, row, HashToken(tok)); err != nil {
		return "", err
	}
	if err := c.storePushKey(ctx, agentID, tok); err != nil {
		return "", err
	}
	c.audit(ctx, agentID, actor, "token.rotate", "credential-pull token replaced; the old one no longer works")
	return tok, nil
}

// PushKeyLabel is the message PushKey authenticates with the token.
const PushKeyLabel = "cardwarden credentials push v1"

// PushKey is the HMAC key that signs the credential pushes to an agent (Standard Webhooks,
// webhook-signature): HMAC-SHA256 keyed by the agent's own token, of PushKeyLabel. The agent
// computes it from its token; the server keeps it only sealed by the vault key, so neither
// the database's token_hash nor anything else in the database is enough to forge a push.
func PushKey(token string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte(PushKeyLabel))
	return m.Sum(nil)
}

// storePushKey seals and stores the push key of a token just issued. Without a vault the
// agent has no push key: an old one (of the previous token) is removed, and pushes are
// refused until a process with the vault key replaces the token.
func (c *Client) storePushKey(ctx context.Context, agentID, tok string) error {
	if c.vault == nil {
		if err := c.store.DeletePushKey(ctx, agentID); err != nil {
			return err
		}
		c.log.Warn("credential-pull token issued without a vault key: pushes to this agent are refused until its token is replaced by a process with CARDWARDEN_VAULT_KEY",
			"agent_id", agentID)
		return nil
	}
	k, err := c.vault.SealPushKey(agentID, PushKey(tok))
	if err != nil {
		return err
	}
	return c.store.PutPushKey(ctx, k)
}

// audit records a human action; best effort, the action itself has happened.
func (c *Client) audit(ctx context.Context, agentID, actor, action, detail string) {
	if actor == "" {
		actor = "unknown"
	}
	if err := c.store.Audit(ctx, store.AuditEntry{At: c.now(), Actor: actor, Action: action, AgentID: agentID, Detail: detail}); err != nil {
		c.log.Error("audit", "agent_id", agentID, "action", action, "error", err)
	}
}

// dummyHash is compared against when an agent has no token, so a miss takes as long as a hit.
var dummyHash = HashToken("cardwarden-no-token")

// VerifyToken checks an agent's token in constant time. Unknown agents, agents without a token
// and wrong tokens all return ErrUnauthorized, so the answer reveals nothing about which agents
// exist.
func (c *Client) VerifyToken(ctx context.Context, agentID, token string) error {
	if c.store == nil {
		return &Error{Kind: ErrNoStore, Op: "verify token", AgentID: agentID}
	}
	want := dummyHash
	row, err := c.store.GetAgent(ctx, agentID)
	switch {
	case err == nil && row.TokenHash != "" && row.Status != string(workflows.StatusRetired):
		// A retired agent's token is revoked (and cleared when it retires); the status check
		// also covers a row retired before revocation existed.
		want = row.TokenHash
	case err != nil && !store.IsNotFound(err):
		return fmt.Errorf("verify token of agent %s: %w", agentID, err)
	}
	ok := subtle.ConstantTimeCompare([]byte(HashToken(token)), []byte(want)) == 1
	if !ok || want == dummyHash || !strings.HasPrefix(token, TokenPrefix) {
		return &Error{Kind: ErrUnauthorized, Op: "verify token", AgentID: agentID}
	}
	return nil
}

// agentRow is the store's row for an agent the workflow may not have recorded yet.
func agentRow(p workflows.Policy) store.Agent {
	pj, err := json.Marshal(p)
	if err != nil {
		pj = []byte("{}")
	}
	return store.Agent{AgentID: p.AgentID, Label: p.Label, Issuer: orDefault(p.Issuer, workflows.DefaultIssuer),
		Status: string(workflows.StatusActive), Policy: string(pj)}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
