package activities

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/workflows"
)

// IssueCard creates a card with the workflow's idempotency key, seals its credentials into
// the vault and records it. It returns only what the workflow may see: id, last4, expiry.
// Every step is idempotent, so a retry after any failure converges on the same single card.
func (a *Activities) IssueCard(ctx context.Context, in workflows.IssueCardInput) (workflows.IssuedCard, error) {
	if in.IdempotencyKey == "" {
		return workflows.IssuedCard{}, temporal.NewNonRetryableApplicationError("issue card: idempotency key is required", workflows.ErrTypeIssuerInvalid, nil)
	}
	iss, err := a.issuer(in.Issuer)
	if err != nil {
		return workflows.IssuedCard{}, err
	}
	defer keepAlive(ctx)()
	card, err := iss.CreateCard(ctx, issuer.CreateCardRequest{
		IdempotencyKey: in.IdempotencyKey,
		Label:          in.Label,
		Currency:       in.Currency,
		Limits:         in.Limits,
		Metadata: map[string]string{
			"agent_id":   in.AgentID,
			"generation": strconv.Itoa(in.Generation),
			"reason":     in.Reason,
		},
	})
	if err != nil {
		return workflows.IssuedCard{}, issuerError("create card", err)
	}
	if err := a.vaultSecrets(ctx, iss, card.ID); err != nil {
		return workflows.IssuedCard{}, err
	}
	recorded, err := a.Store.RecordNewCard(ctx, store.Card{
		AgentID: in.AgentID, Generation: in.Generation, Issuer: in.Issuer, IssuerCardID: card.ID,
		Last4: card.Last4, ExpMonth: card.ExpMonth, ExpYear: card.ExpYear, Status: string(card.Status),
		DailyLimitMinor: in.DailyLimitMinor, CreatedAt: card.CreatedAt,
	})
	if err != nil {
		return workflows.IssuedCard{}, fmt.Errorf("issue card: %w", err)
	}
	// A retry after a lost answer (or a killed worker) finds the card recorded: one audit
	// entry per card, not per attempt.
	if recorded {
		a.audit(ctx, store.AuditEntry{Actor: "workflow", Action: "card-issued", AgentID: in.AgentID,
			Detail: fmt.Sprintf("generation %d, card %s ****%s, reason %s", in.Generation, card.ID, card.Last4, in.Reason)})
	}
	a.log().InfoContext(ctx, "card issued", "agent_id", in.AgentID, "generation", in.Generation, "card_id", card.ID, "reason", in.Reason)
	return workflows.IssuedCard{ID: card.ID, Last4: card.Last4, ExpiresAt: card.ExpiresAt()}, nil
}

// vaultSecrets reveals the card's credentials and seals them into the vault, where the agent
// that owns the card pulls them. They exist in plaintext only inside this function.
func (a *Activities) vaultSecrets(ctx context.Context, iss issuer.Issuer, cardID string) error {
	if !iss.Capabilities().Reveal {
		a.log().WarnContext(ctx, "issuer cannot reveal card credentials; nothing vaulted", "issuer", iss.Name(), "card_id", cardID)
		return nil
	}
	secrets, err := iss.RevealCard(ctx, cardID)
	if err != nil {
		return issuerError("reveal card", err)
	}
	entry, err := a.Vault.Seal(iss.Name(), cardID, secrets)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("seal card credentials: "+err.Error(), "VaultError", nil)
	}
	if err := a.Store.PutVaultEntry(ctx, entry); err != nil {
		return fmt.Errorf("issue card: %w", err)
	}
	return nil
}

// UpdateLimit sets a card's limits at the issuer and records the daily limit.
func (a *Activities) UpdateLimit(ctx context.Context, in workflows.UpdateLimitInput) error {
	iss, err := a.issuer(in.Issuer)
	if err != nil {
		return err
	}
	if _, err := iss.UpdateLimits(ctx, in.CardID, in.Limits); err != nil {
		return issuerError("update limits", err)
	}
	if err := a.Store.SetCardDailyLimit(ctx, in.Issuer, in.CardID, in.DailyLimitMinor); err != nil && !store.IsNotFound(err) {
		return fmt.Errorf("update limit: %w", err)
	}
	return nil
}

// PauseCard pauses a card at the issuer.
func (a *Activities) PauseCard(ctx context.Context, in workflows.CardActionInput) error {
	if err := a.cardAction(ctx, in, "pause card", issuer.CardPaused, issuer.Issuer.PauseCard); err != nil {
		return err
	}
	if a.Metrics != nil && !in.BurstStartedAt.IsZero() {
		a.Metrics.ObserveFreeze(in.Issuer, in.BurstStartedAt, time.Now())
	}
	return nil
}

// ResumeCard resumes a paused card.
func (a *Activities) ResumeCard(ctx context.Context, in workflows.CardActionInput) error {
	return a.cardAction(ctx, in, "resume card", issuer.CardActive, issuer.Issuer.ResumeCard)
}

// CloseCard closes a card for good. A card that is already closed, or that the issuer does
// not know, counts as closed: the goal state is reached either way.
func (a *Activities) CloseCard(ctx context.Context, in workflows.CardActionInput) error {
	return a.cardAction(ctx, in, "close card", issuer.CardClosed, issuer.Issuer.CloseCard)
}

func (a *Activities) cardAction(ctx context.Context, in workflows.CardActionInput, op string, to issuer.CardStatus,
	call func(issuer.Issuer, context.Context, string) (issuer.Card, error)) error {
	iss, err := a.issuer(in.Issuer)
	if err != nil {
		return err
	}
	if _, err := call(iss, ctx, in.CardID); err != nil {
		done := to == issuer.CardClosed && (errors.Is(err, issuer.ErrAlreadyClosed) || errors.Is(err, issuer.ErrNotFound))
		if !done {
			return issuerError(op, err)
		}
		a.log().InfoContext(ctx, "card already closed", "agent_id", in.AgentID, "card_id", in.CardID, "issuer_said", err.Error())
	}
	err = a.Store.SetCardStatus(ctx, in.Issuer, in.CardID, string(to), time.Now())
	if err != nil && !store.IsNotFound(err) {
		return fmt.Errorf("%s: %w", op, err)
	}
	a.log().InfoContext(ctx, op, "agent_id", in.AgentID, "card_id", in.CardID, "reason", in.Reason)
	return nil
}

// audit writes an audit entry, logging rather than failing: the action it describes has
// already happened and must not be retried because of the log.
func (a *Activities) audit(ctx context.Context, e store.AuditEntry) {
	if err := a.Store.Audit(ctx, e); err != nil {
		a.log().ErrorContext(ctx, "audit entry not written", "action", e.Action, "agent_id", e.AgentID, "error", err)
	}
}
