// Package vault seals card credentials with AES-256-GCM before they reach the database, and
// opens them only for the agent that owns the card. The key never leaves the process.
package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/store"
)

// KeySize is the AES-256 key length in bytes.
const KeySize = 32

// Vault seals and opens card secrets.
type Vault struct {
	aead  cipher.AEAD
	keyID string
}

// New builds a vault from a 32-byte key.
func New(key []byte) (*Vault, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("vault key: want %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("vault key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("vault key: %w", err)
	}
	// The key id lets a future key rotation tell which key sealed an entry without
	// revealing anything about the key itself.
	sum := sha256.Sum256(append([]byte("cardwarden-vault-key-id:"), key...))
	return &Vault{aead: aead, keyID: hex.EncodeToString(sum[:4])}, nil
}

// ParseKey decodes a key given as 64 hex characters or as standard/URL base64 of 32 bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == KeySize {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return b, nil
		}
	}
	return nil, errors.New("CARDWARDEN_VAULT_KEY must be 32 bytes as 64 hex characters or base64")
}

// LoadOrCreateKeyFile reads a hex key from path, creating it with a fresh random key (mode
// 0600) when it does not exist. Used by `cardwarden dev` so its state survives restarts.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil { // #nosec G304 -- `cardwarden dev`'s own key file under --dir
		key, err := ParseKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("vault key file %s: %w", path, err)
		}
		return key, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("vault key file %s: %w", path, err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate vault key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("vault key file %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("vault key file %s: %w", path, err)
	}
	return key, nil
}

type sealed struct {
	Number   string `json:"n"`
	CVC      string `json:"c"`
	ExpMonth int    `json:"m"`
	ExpYear  int    `json:"y"`
}

// Seal encrypts a card's secrets into a vault entry bound to that issuer and card, so a
// ciphertext copied onto another card's row fails to open.
func (v *Vault) Seal(issuerName, cardID string, s issuer.Secrets) (store.VaultEntry, error) {
	plain, err := json.Marshal(sealed{Number: s.Number, CVC: s.CVC, ExpMonth: s.ExpMonth, ExpYear: s.ExpYear})
	if err != nil {
		return store.VaultEntry{}, fmt.Errorf("seal card %s/%s: %w", issuerName, cardID, err)
	}
	nonce := make([]byte, v.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return store.VaultEntry{}, fmt.Errorf("seal card %s/%s: %w", issuerName, cardID, err)
	}
	return store.VaultEntry{
		Issuer:       issuerName,
		IssuerCardID: cardID,
		KeyID:        v.keyID,
		Nonce:        nonce,
		Ciphertext:   v.aead.Seal(nil, nonce, plain, additionalData(issuerName, cardID)),
	}, nil
}

// Open decrypts a vault entry.
func (v *Vault) Open(e store.VaultEntry) (issuer.Secrets, error) {
	if e.KeyID != v.keyID {
		return issuer.Secrets{}, fmt.Errorf("open card %s/%s: sealed with key %s, vault has key %s", e.Issuer, e.IssuerCardID, e.KeyID, v.keyID)
	}
	plain, err := v.aead.Open(nil, e.Nonce, e.Ciphertext, additionalData(e.Issuer, e.IssuerCardID))
	if err != nil {
		return issuer.Secrets{}, fmt.Errorf("open card %s/%s: authentication failed", e.Issuer, e.IssuerCardID)
	}
	var s sealed
	if err := json.Unmarshal(plain, &s); err != nil {
		return issuer.Secrets{}, fmt.Errorf("open card %s/%s: corrupt entry", e.Issuer, e.IssuerCardID)
	}
	return issuer.Secrets{Number: s.Number, CVC: s.CVC, ExpMonth: s.ExpMonth, ExpYear: s.ExpYear}, nil
}

func additionalData(issuerName, cardID string) []byte { return []byte(issuerName + "\x00" + cardID) }

// SealPushKey seals an agent's credential-push signing key, bound to the agent, so a sealed
// key copied onto another agent's row fails to open.
func (v *Vault) SealPushKey(agentID string, key []byte) (store.PushKey, error) {
	nonce := make([]byte, v.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return store.PushKey{}, fmt.Errorf("seal push key of agent %s: %w", agentID, err)
	}
	return store.PushKey{AgentID: agentID, KeyID: v.keyID, Nonce: nonce,
		Ciphertext: v.aead.Seal(nil, nonce, key, pushKeyData(agentID))}, nil
}

// OpenPushKey opens what SealPushKey sealed.
func (v *Vault) OpenPushKey(k store.PushKey) ([]byte, error) {
	if k.KeyID != v.keyID {
		return nil, fmt.Errorf("open push key of agent %s: sealed with key %s, vault has key %s", k.AgentID, k.KeyID, v.keyID)
	}
	key, err := v.aead.Open(nil, k.Nonce, k.Ciphertext, pushKeyData(k.AgentID))
	if err != nil {
		return nil, fmt.Errorf("open push key of agent %s: authentication failed", k.AgentID)
	}
	return key, nil
}

func pushKeyData(agentID string) []byte { return []byte("push-key\x00" + agentID) }

// SealAnswer seals an API answer that carries a secret (an agent's token) so the answer can
// be kept for an Idempotency-Key replay, bound to that key. The result is keyID, nonce and
// ciphertext in one byte string.
func (v *Vault) SealAnswer(idemKey string, body []byte) ([]byte, error) {
	nonce := make([]byte, v.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal answer: %w", err)
	}
	out := append([]byte(v.keyID+"\x00"), nonce...)
	return v.aead.Seal(out, nonce, body, answerData(idemKey)), nil
}

// OpenAnswer opens what SealAnswer sealed.
func (v *Vault) OpenAnswer(idemKey string, sealed []byte) ([]byte, error) {
	keyID, rest, ok := bytes.Cut(sealed, []byte{0})
	if !ok || string(keyID) != v.keyID || len(rest) < v.aead.NonceSize() {
		return nil, fmt.Errorf("open answer: sealed with another key")
	}
	n := v.aead.NonceSize()
	body, err := v.aead.Open(nil, rest[:n], rest[n:], answerData(idemKey))
	if err != nil {
		return nil, fmt.Errorf("open answer: authentication failed")
	}
	return body, nil
}

func answerData(idemKey string) []byte { return []byte("answer\x00" + idemKey) }
