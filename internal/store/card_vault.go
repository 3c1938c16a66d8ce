package store

import (
	"context"
	"fmt"
	"time"
)

// The credential vault: cards' sealed numbers and CVVs.

// VaultEntry is a card's encrypted credentials. The store never sees plaintext.
type VaultEntry struct {
	Issuer       string    `db:"issuer"`
	IssuerCardID string    `db:"issuer_card_id"`
	KeyID        string    `db:"key_id"`
	Nonce        []byte    `db:"nonce"`
	Ciphertext   []byte    `db:"ciphertext"`
	CreatedAt    time.Time `db:"created_at"`
}

// PutVaultEntry stores a card's sealed credentials; storing them again replaces them, so a
// retried issuing activity converges on one entry.
func (s *Store) PutVaultEntry(ctx context.Context, v VaultEntry) error {
	_, err := s.exec(ctx, `
INSERT INTO card_vault (issuer, issuer_card_id, key_id, nonce, ciphertext, created_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (issuer, issuer_card_id) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext`,
		v.Issuer, v.IssuerCardID, v.KeyID, v.Nonce, v.Ciphertext, utc(time.Now()))
	if err != nil {
		return fmt.Errorf("vault card %s/%s: %w", v.Issuer, v.IssuerCardID, err)
	}
	return nil
}

// GetVaultEntry returns a card's sealed credentials or ErrNotFound.
func (s *Store) GetVaultEntry(ctx context.Context, issuer, issuerCardID string) (VaultEntry, error) {
	return one[VaultEntry](ctx, s, fmt.Sprintf("vault entry %s/%s", issuer, issuerCardID), `SELECT * FROM card_vault WHERE issuer = ? AND issuer_card_id = ?`, issuer, issuerCardID)
}
