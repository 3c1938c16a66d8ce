package store

import (
	"context"
	"fmt"
	"time"
)

// Agents' credential-push keys, sealed by the vault.

// PushKey is an agent's credential-push signing key, sealed by the vault (never plaintext).
type PushKey struct {
	AgentID    string    `db:"agent_id"`
	KeyID      string    `db:"key_id"`
	Nonce      []byte    `db:"nonce"`
	Ciphertext []byte    `db:"ciphertext"`
	CreatedAt  time.Time `db:"created_at"`
}

// PutPushKey stores (or replaces) the agent's sealed push key.
func (s *Store) PutPushKey(ctx context.Context, k PushKey) error {
	_, err := s.exec(ctx, `
INSERT INTO agent_push_keys (agent_id, key_id, nonce, ciphertext, created_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (agent_id) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext,
  created_at = excluded.created_at`, k.AgentID, k.KeyID, k.Nonce, k.Ciphertext, utc(time.Now()))
	if err != nil {
		return fmt.Errorf("store push key of agent %s: %w", k.AgentID, err)
	}
	return nil
}

// GetPushKey returns the agent's sealed push key or ErrNotFound.
func (s *Store) GetPushKey(ctx context.Context, agentID string) (PushKey, error) {
	return one[PushKey](ctx, s, fmt.Sprintf("push key of agent %s", agentID), `SELECT * FROM agent_push_keys WHERE agent_id = ?`, agentID)
}

// DeletePushKey removes the agent's push key (its token was replaced by a process without the
// vault key, so the old key no longer matches any token).
func (s *Store) DeletePushKey(ctx context.Context, agentID string) error {
	if _, err := s.exec(ctx, `DELETE FROM agent_push_keys WHERE agent_id = ?`, agentID); err != nil {
		return fmt.Errorf("delete push key of agent %s: %w", agentID, err)
	}
	return nil
}
