package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/internal/outbound"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/workflows"
)

// CredentialsPush is the body POSTed to an agent's credentials_push_url.
type CredentialsPush struct {
	AgentID    string `json:"agent_id"`
	Issuer     string `json:"issuer"`
	CardID     string `json:"card_id"`
	Generation int    `json:"generation"`
	Number     string `json:"number"`
	CVC        string `json:"cvc"`
	ExpMonth   int    `json:"exp_month"`
	ExpYear    int    `json:"exp_year"`
}

// PushCredentials sends a new card's credentials to the agent's push URL through the hardened
// outbound client (https, no redirects, no internal addresses unless the operator allows
// them), signed the Standard Webhooks way with the agent's push key: HMAC-SHA256 keyed by the
// agent's token, of "cardwarden credentials push v1" (starter.PushKey). The agent derives the
// key from its token; the server keeps it sealed by the vault, so read access to the database
// cannot forge a push. The webhook id is stable per card, so the agent can drop a retried
// delivery.
func (a *Activities) PushCredentials(ctx context.Context, in workflows.PushCredentialsInput) error {
	sealed, err := a.Store.GetPushKey(ctx, in.AgentID)
	if store.IsNotFound(err) {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("push credentials of agent %s: the agent has no push key (no token, or its token was issued without the vault key; replace the token)", in.AgentID), "NoAgentToken", nil)
	} else if err != nil {
		return fmt.Errorf("push credentials: %w", err)
	}
	key, err := a.Vault.OpenPushKey(sealed)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("push credentials of agent %s: %v", in.AgentID, err), "NoAgentToken", nil)
	}
	target := outbound.Redact(in.URL)
	if err := outbound.CheckURLSyntax(in.URL); err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("push credentials of agent %s: %v", in.AgentID, err), "InvalidPushURL", nil)
	}
	entry, err := a.Store.GetVaultEntry(ctx, in.Issuer, in.CardID)
	if err != nil {
		if store.IsNotFound(err) {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("push credentials of agent %s: card %s is not in the vault", in.AgentID, in.CardID), "NotVaulted", nil)
		}
		return fmt.Errorf("push credentials: %w", err)
	}
	sec, err := a.Vault.Open(entry)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("push credentials of agent %s: %v", in.AgentID, err), "VaultOpen", nil)
	}
	body, err := json.Marshal(CredentialsPush{
		AgentID: in.AgentID, Issuer: in.Issuer, CardID: in.CardID, Generation: in.Generation,
		Number: sec.Number, CVC: sec.CVC, ExpMonth: sec.ExpMonth, ExpYear: sec.ExpYear,
	})
	if err != nil {
		return fmt.Errorf("push credentials: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.URL, bytes.NewReader(body))
	if err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("push credentials of agent %s: bad URL", in.AgentID), "InvalidPushURL", nil)
	}
	req.Header.Set("Content-Type", "application/json")
	id := fmt.Sprintf("cred_%s_%s_%d", in.AgentID, in.CardID, in.Generation)
	stdwebhooks.Sign(req.Header, key, id, time.Now(), body)
	resp, err := a.httpClient().Do(req)
	if err != nil {
		if outbound.IsRefused(err) {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("push credentials of agent %s: %v", in.AgentID, err), "PushRefused", nil)
		}
		// A *url.Error quotes the URL; the cause is enough.
		return fmt.Errorf("push credentials of agent %s: %s", in.AgentID, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode/100 == 2:
	case outbound.IsRedirect(resp.StatusCode):
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("push credentials of agent %s: %v", in.AgentID,
			outbound.RedirectError(resp.StatusCode, req.URL.Host)), "PushRefused", nil)
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("push credentials of agent %s: endpoint answered %d", in.AgentID, resp.StatusCode), "PushRejected", nil)
	default:
		return fmt.Errorf("push credentials of agent %s: endpoint answered %d", in.AgentID, resp.StatusCode)
	}
	return a.Store.Audit(ctx, store.AuditEntry{Actor: "cardwarden", Action: "credentials-pushed", AgentID: in.AgentID,
		Detail: fmt.Sprintf("card %s generation %d to %s", in.CardID, in.Generation, target)})
}
