package stdwebhooks

import (
	"encoding/base64"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"type":"authorization.created"}`)
	for _, secret := range []string{"raw-secret", SecretPrefix + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))} {
		key, err := DecodeSecret(secret)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		Sign(h, key, "evt_1", now, body)

		if id, err := Verify(key, h, body, now.Add(time.Minute), 0); err != nil || id != "evt_1" {
			t.Fatalf("good delivery: id=%q err=%v", id, err)
		}
		if _, err := Verify(key, h, []byte(`{"type":"tampered"}`), now, 0); !errors.Is(err, ErrNoMatch) {
			t.Fatalf("tampered body: %v", err)
		}
		if _, err := Verify(key, h, body, now.Add(6*time.Minute), 0); !errors.Is(err, ErrTooOld) {
			t.Fatalf("stale: %v", err)
		}
		if _, err := Verify(key, h, body, now.Add(-6*time.Minute), 0); !errors.Is(err, ErrTooNew) {
			t.Fatalf("future: %v", err)
		}
		rotated := h.Clone()
		rotated.Set(HeaderSignature, "v1,bm90LWl0 v2,whatever "+h.Get(HeaderSignature))
		if _, err := Verify(key, rotated, body, now, 0); err != nil {
			t.Fatalf("rotated secrets: %v", err)
		}
		if _, err := Verify([]byte("other"), h, body, now, 0); !errors.Is(err, ErrNoMatch) {
			t.Fatalf("wrong key: %v", err)
		}
		if _, err := Verify(key, http.Header{}, body, now, 0); !errors.Is(err, ErrMissingHeaders) {
			t.Fatalf("no headers: %v", err)
		}
	}
}

func TestDecodeSecret(t *testing.T) {
	if _, err := DecodeSecret(""); err == nil {
		t.Fatal("empty secret accepted")
	}
	if _, err := DecodeSecret(SecretPrefix + "!!!"); err == nil {
		t.Fatal("bad base64 accepted")
	}
	k, err := DecodeSecret(SecretPrefix + "YWJj") // "abc"
	if err != nil || string(k) != "abc" {
		t.Fatalf("got %q, %v", k, err)
	}
}
