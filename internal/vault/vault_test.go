package vault_test

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/vault"
)

func testKey(b byte) []byte {
	k := make([]byte, vault.KeySize)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	v, err := vault.New(testKey(1))
	require.NoError(t, err)
	secrets := issuer.Secrets{Number: "4242424242424242", CVC: "123", ExpMonth: 12, ExpYear: 2030}
	e, err := v.Seal("sim", "card_1", secrets)
	require.NoError(t, err)
	require.NotContains(t, string(e.Ciphertext), "4242424242424242")
	require.NotContains(t, string(e.Ciphertext), `"123"`)

	got, err := v.Open(e)
	require.NoError(t, err)
	require.Equal(t, secrets, got)

	// Two seals of the same secrets differ (fresh nonce).
	e2, err := v.Seal("sim", "card_1", secrets)
	require.NoError(t, err)
	require.NotEqual(t, e.Ciphertext, e2.Ciphertext)
}

func TestOpenRejectsMovedOrForeignEntries(t *testing.T) {
	v, err := vault.New(testKey(1))
	require.NoError(t, err)
	e, err := v.Seal("sim", "card_1", issuer.Secrets{Number: "4000056655665556", CVC: "999"})
	require.NoError(t, err)

	moved := e
	moved.IssuerCardID = "card_2"
	_, err = v.Open(moved)
	require.Error(t, err, "a ciphertext copied onto another card must not open")

	other, err := vault.New(testKey(7))
	require.NoError(t, err)
	_, err = other.Open(e)
	require.ErrorContains(t, err, "sealed with key")

	tampered := e
	tampered.Ciphertext = append([]byte{}, e.Ciphertext...)
	tampered.Ciphertext[0] ^= 1
	_, err = v.Open(tampered)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "4000056655665556")
}

func TestSecretsNeverFormat(t *testing.T) {
	s := issuer.Secrets{Number: "4242424242424242", CVC: "123"}
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s)} {
		require.NotContains(t, out, "4242")
		require.NotContains(t, out, "123")
	}
}

func TestParseKey(t *testing.T) {
	k := testKey(3)
	got, err := vault.ParseKey(hex.EncodeToString(k))
	require.NoError(t, err)
	require.Equal(t, k, got)
	_, err = vault.ParseKey("too-short")
	require.ErrorContains(t, err, "CARDWARDEN_VAULT_KEY")
	_, err = vault.New([]byte("short"))
	require.Error(t, err)
}

func TestKeyFileIsCreatedOnceAndPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "vault.key")
	k1, err := vault.LoadOrCreateKeyFile(path)
	require.NoError(t, err)
	k2, err := vault.LoadOrCreateKeyFile(path)
	require.NoError(t, err)
	require.Equal(t, k1, k2, "the key survives restarts")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	b, _ := os.ReadFile(path)
	require.Equal(t, hex.EncodeToString(k1), strings.TrimSpace(string(b)))
}
