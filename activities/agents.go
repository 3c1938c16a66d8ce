package activities

import (
	"context"
	"encoding/json"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/workflows"
)

// IssuerInfo returns what the workflow must know about an issuer, and fails non-retryably
// when the issuer is not configured, which the workflow reports as an invalid policy.
func (a *Activities) IssuerInfo(_ context.Context, in workflows.IssuerInfoInput) (workflows.IssuerInfo, error) {
	iss, err := a.issuer(in.Issuer)
	if err != nil {
		return workflows.IssuerInfo{}, err
	}
	return workflows.IssuerInfo{Name: iss.Name(), Capabilities: iss.Capabilities()}, nil
}

// UpsertAgent records the agent with its policy and returns its cards' history, so a new
// workflow for an agent that existed before continues its generations.
func (a *Activities) UpsertAgent(ctx context.Context, in workflows.UpsertAgentInput) (workflows.AgentSnapshot, error) {
	policy, err := json.Marshal(in.Policy)
	if err != nil {
		return workflows.AgentSnapshot{}, temporal.NewNonRetryableApplicationError("encode policy: "+err.Error(), "EncodeError", nil)
	}
	if err := a.Store.UpsertAgent(ctx, store.Agent{
		AgentID: in.Policy.AgentID, Label: in.Policy.Label, Issuer: in.Policy.Issuer, Status: string(in.Status), Policy: string(policy),
	}); err != nil {
		return workflows.AgentSnapshot{}, err
	}
	cards, err := a.Store.ListCards(ctx, in.Policy.AgentID)
	if err != nil {
		return workflows.AgentSnapshot{}, err
	}
	return agentSnapshot(cards, in.CardsSince), nil
}

// SetAgentStatus records the agent's lifecycle status. Retirement also revokes the agent's
// credential-pull token and push key: the old token stops working, and an agent created again
// with the same id gets a new token.
func (a *Activities) SetAgentStatus(ctx context.Context, in workflows.SetAgentStatusInput) error {
	err := a.Store.SetAgentStatus(ctx, in.AgentID, string(in.Status))
	if store.IsNotFound(err) {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("agent %s is not recorded", in.AgentID), "NotFound", nil)
	}
	if err != nil {
		return err
	}
	if in.Status == workflows.StatusRetired {
		if err := a.Store.RevokeAgentToken(ctx, in.AgentID); err != nil {
			return err
		}
		if err := a.Store.Audit(ctx, store.AuditEntry{Actor: "cardwarden", Action: "token.revoke", AgentID: in.AgentID,
			Detail: "agent retired: credential-pull token and push key revoked"}); err != nil {
			a.log().Error("audit", "agent_id", in.AgentID, "action", "token.revoke", "error", err)
		}
	}
	return nil
}

// Audit appends an entry to the audit log.
func (a *Activities) Audit(ctx context.Context, in workflows.AuditInput) error {
	return a.Store.Audit(ctx, store.AuditEntry{At: in.At, Actor: in.Actor, Action: in.Action, AgentID: in.AgentID, Detail: in.Detail})
}
