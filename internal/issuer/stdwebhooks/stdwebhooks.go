// Package stdwebhooks signs and verifies webhook deliveries per Standard Webhooks
// (https://www.standardwebhooks.com): headers webhook-id, webhook-timestamp and
// webhook-signature, the signature being "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
//
// The issuer simulator signs with it and the sim adapter verifies with it, so both ends
// agree on one implementation of the wire format (the one Lithic uses in production).
package stdwebhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names defined by Standard Webhooks.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Tolerance is how far a delivery's timestamp may be from the receiver's clock, in either
// direction, before it is rejected as a replay.
const Tolerance = 5 * time.Minute

// SecretPrefix marks a base64-encoded secret ("whsec_<base64>").
const SecretPrefix = "whsec_"

// Verification failures. They are deliberately coarse: the caller answers 401 either way.
var (
	ErrMissingHeaders   = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrRepeatedHeaders  = errors.New("webhook: webhook-id, webhook-timestamp or webhook-signature given more than once")
	ErrInvalidTimestamp = errors.New("webhook: timestamp is not a unix time")
	ErrTooOld           = errors.New("webhook: timestamp too old")
	ErrTooNew           = errors.New("webhook: timestamp too new")
	ErrNoMatch          = errors.New("webhook: no matching signature")
)

// DecodeSecret turns a configured secret into the HMAC key. A "whsec_" prefix means the rest
// is base64 (the Standard Webhooks convention); anything else is used as raw bytes, because
// operators often paste an arbitrary string and a silent base64 mis-decode would be worse.
func DecodeSecret(secret string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("webhook secret is empty")
	}
	rest, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return []byte(secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		// Some tools emit unpadded base64.
		if key, err = base64.RawStdEncoding.DecodeString(rest); err != nil {
			return nil, fmt.Errorf("webhook secret: %q prefix but the rest is not base64: %w", SecretPrefix, err)
		}
	}
	if len(key) == 0 {
		return nil, errors.New("webhook secret: empty key after " + SecretPrefix)
	}
	return key, nil
}

// Signature computes "v1,<base64>" for one delivery.
func Signature(key []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Sign sets the three Standard Webhooks headers on h for a delivery of body.
func Sign(h http.Header, key []byte, id string, ts time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, Signature(key, id, ts, body))
}

// Verify checks a delivery's headers against body at time now. The signature header may hold
// several space-separated signatures (secret rotation); one valid "v1" entry suffices.
// Comparison is constant-time. On success it returns the webhook id, for deduplication.
func Verify(key []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) (string, error) {
	// One value each: with two timestamps (or ids) a receiver and a proxy in front of it could
	// each read a different one, so the one checked for age might not be the one signed.
	for _, name := range []string{HeaderID, HeaderTimestamp, HeaderSignature} {
		if len(h.Values(name)) > 1 {
			return "", ErrRepeatedHeaders
		}
	}
	id, tsRaw, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsRaw == "" || sigs == "" {
		return "", ErrMissingHeaders
	}
	sec, err := strconv.ParseInt(tsRaw, 10, 64)
	if err != nil || strings.TrimSpace(tsRaw) != tsRaw {
		return "", ErrInvalidTimestamp
	}
	ts := time.Unix(sec, 0)
	if tolerance <= 0 {
		tolerance = Tolerance
	}
	if now.Sub(ts) > tolerance {
		return "", ErrTooOld
	}
	if ts.Sub(now) > tolerance {
		return "", ErrTooNew
	}
	want := []byte(Signature(key, id, ts, body))
	for _, s := range strings.Fields(sigs) {
		if !strings.HasPrefix(s, "v1,") {
			continue // unknown schemes are ignored, per the spec
		}
		if hmac.Equal([]byte(s), want) {
			return id, nil
		}
	}
	return "", ErrNoMatch
}
