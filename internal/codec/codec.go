// Package codec encrypts Temporal payloads with AES-256-GCM, so workflow inputs, results,
// signals, queries and activity arguments are ciphertext in the Temporal server's database and
// in exported histories. It also serves the codec endpoint the Temporal Web UI calls to show an
// operator the decoded payloads.
//
// The key comes from CARDWARDEN_CODEC_KEY: 32 bytes as 64 hex characters or base64. A
// comma-separated list rotates keys: the first encrypts, every one decrypts, so histories
// written under an older key stay readable while it is listed.
//
// Card numbers and CVCs never reach a payload in the first place (they go from the issuing
// activity straight to the vault); the codec protects everything else an operator would rather
// not leave in plaintext: budgets, merchants, alert messages.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// EnvKey is the environment variable holding the codec key(s).
const EnvKey = "CARDWARDEN_CODEC_KEY"

// KeySize is the AES-256 key length in bytes.
const KeySize = 32

// Payload metadata written on encrypted payloads. The encoding name is the one Temporal's
// samples and most codec servers use, so generic tooling recognizes the payloads.
const (
	MetadataEncoding      = "binary/encrypted"
	MetadataKeyID         = "encryption-key-id"
	metadataEncodingField = converter.MetadataEncoding
)

// Codec is a converter.PayloadCodec. The zero value is not usable; build one with New.
type Codec struct {
	keys []key // keys[0] encrypts
}

type key struct {
	id   string
	aead cipher.AEAD
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New builds a codec from one or more 32-byte keys; the first encrypts.
func New(keys ...[]byte) (*Codec, error) {
	if len(keys) == 0 {
		return nil, errors.New("codec: at least one key is required")
	}
	c := &Codec{}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("codec key %d: want %d bytes, got %d", i+1, KeySize, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("codec key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("codec key %d: %w", i+1, err)
		}
		c.keys = append(c.keys, key{id: keyID(k), aead: aead})
	}
	return c, nil
}

// keyID names a key without revealing anything about it, so a payload says which key sealed it.
func keyID(k []byte) string {
	sum := sha256.Sum256(append([]byte("cardwarden-codec-key-id:"), k...))
	return hex.EncodeToString(sum[:6])
}

// ParseKeys decodes a comma-separated list of keys, each 64 hex characters or base64 of 32
// bytes. Errors name the position, never the key.
func ParseKeys(s string) ([][]byte, error) {
	var out [][]byte
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, err := parseKey(part)
		if err != nil {
			return nil, fmt.Errorf("%s key %d: %w", EnvKey, i+1, err)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no key given", EnvKey)
	}
	return out, nil
}

func parseKey(s string) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) == KeySize {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return b, nil
		}
	}
	return nil, errors.New("want 32 bytes as 64 hex characters or base64 (generate one with: openssl rand -hex 32)")
}

// FromEnv builds the codec from CARDWARDEN_CODEC_KEY read through getenv (os.Getenv in
// production). It returns nil and no error when the variable is unset: encryption is opt-in.
func FromEnv(getenv func(string) string) (*Codec, error) {
	v := strings.TrimSpace(getenv(EnvKey))
	if v == "" {
		return nil, nil
	}
	keys, err := ParseKeys(v)
	if err != nil {
		return nil, err
	}
	return New(keys...)
}

// KeyID is the id of the key that encrypts.
func (c *Codec) KeyID() string { return c.keys[0].id }

// Encode encrypts every payload with the current key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	k := c.keys[0]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("codec encode payload %d: %w", i, err)
		}
		nonce := make([]byte, k.aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return payloads, fmt.Errorf("codec encode payload %d: %w", i, err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				metadataEncodingField: []byte(MetadataEncoding),
				MetadataKeyID:         []byte(k.id),
			},
			// The key id is authenticated too, so a payload cannot be relabelled.
			Data: k.aead.Seal(nonce, nonce, plain, []byte(k.id)),
		}
	}
	return out, nil
}

// Decode decrypts payloads this codec encrypted and passes any other payload through
// unchanged, so histories written before encryption was turned on stay readable.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[metadataEncodingField]) != MetadataEncoding {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		k, ok := c.key(id)
		if !ok {
			return payloads, fmt.Errorf("codec decode payload %d: encrypted with key %q, which is not in %s", i, id, EnvKey)
		}
		data := p.GetData()
		n := k.aead.NonceSize()
		if len(data) < n {
			return payloads, fmt.Errorf("codec decode payload %d: ciphertext too short", i)
		}
		plain, err := k.aead.Open(nil, data[:n], data[n:], []byte(id))
		if err != nil {
			return payloads, fmt.Errorf("codec decode payload %d: authentication failed", i)
		}
		var dec commonpb.Payload
		if err := proto.Unmarshal(plain, &dec); err != nil {
			return payloads, fmt.Errorf("codec decode payload %d: %w", i, err)
		}
		out[i] = &dec
	}
	return out, nil
}

func (c *Codec) key(id string) (key, bool) {
	for _, k := range c.keys {
		if k.id == id {
			return k, true
		}
	}
	return key{}, false
}

// DataConverter returns the data converter every Temporal client and worker of a deployment
// must share: the default converter, encrypted by c. With a nil codec it is the default
// converter, so callers can pass FromEnv's result unconditionally.
func DataConverter(c *Codec) converter.DataConverter {
	if c == nil {
		return converter.GetDefaultDataConverter()
	}
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}
