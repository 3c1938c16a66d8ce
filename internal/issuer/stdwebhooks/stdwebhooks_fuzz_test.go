package stdwebhooks_test

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
)

var fuzzNow = time.Unix(1_795_874_458, 0)

// FuzzVerifyHeaders feeds Verify whatever headers and body a hostile sender might post. Without
// the key nothing may verify, and nothing may panic.
func FuzzVerifyHeaders(f *testing.F) {
	f.Add("evt_1", "1795874458", "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDDrWAv2Y=", []byte(`{"id":"evt_1"}`))
	f.Add("", "", "", []byte{})
	f.Add("evt_1", "-9223372036854775808", "v1,", []byte(`{}`))
	f.Add("evt_1", "9223372036854775807", "v2,abc v1,def", []byte(`{}`))
	f.Add("evt_1", "1795874458.5", "v1,AAAA", []byte(`x`))
	f.Add("evt 1", "01795874458", "   v1,a  v1,b   ", []byte("\x00\xff"))
	key := []byte("fuzz-secret")
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(stdwebhooks.HeaderID, id)
		h.Set(stdwebhooks.HeaderTimestamp, ts)
		h.Set(stdwebhooks.HeaderSignature, sig)
		got, err := stdwebhooks.Verify(key, h, body, fuzzNow, 0)
		if err == nil {
			t.Fatalf("forged delivery verified: id=%q ts=%q sig=%q body=%q -> %q", id, ts, sig, body, got)
		}
		for _, known := range []error{stdwebhooks.ErrMissingHeaders, stdwebhooks.ErrRepeatedHeaders, stdwebhooks.ErrInvalidTimestamp, stdwebhooks.ErrTooOld,
			stdwebhooks.ErrTooNew, stdwebhooks.ErrNoMatch} {
			if errors.Is(err, known) {
				return
			}
		}
		t.Fatalf("unexpected error type: %v", err)
	})
}

// FuzzSignVerify signs arbitrary deliveries and checks the verifier's contract: a genuine
// signature verifies exactly when its timestamp is within the tolerance, returns the id, and
// stops verifying when any byte of the body, the id or the timestamp changes, or when the key
// differs.
func FuzzSignVerify(f *testing.F) {
	f.Add([]byte("k"), "evt_1", int64(0), []byte(`{"id":"evt_1"}`), uint16(0))
	f.Add([]byte("whsec_c2VjcmV0"), "msg_2", int64(-300), []byte{}, uint16(3))
	f.Add([]byte{0}, "a", int64(301), []byte("\x00"), uint16(1))
	f.Add([]byte("key"), "evt_3", int64(300), []byte("body"), uint16(9))
	f.Fuzz(func(t *testing.T, key []byte, id string, offset int64, body []byte, flip uint16) {
		if len(key) == 0 || offset > 1<<40 || offset < -(1<<40) {
			return
		}
		ts := fuzzNow.Add(time.Duration(offset) * time.Second)
		h := http.Header{}
		stdwebhooks.Sign(h, key, id, ts, body)
		got, err := stdwebhooks.Verify(key, h, body, fuzzNow, 0)
		// http.Header.Set trims surrounding whitespace from values the way HTTP would; an id
		// that changes under it, or an empty one, cannot verify.
		idOK := id != "" && h.Get(stdwebhooks.HeaderID) == id
		inWindow := offset >= -300 && offset <= 300
		switch {
		case idOK && inWindow && (err != nil || got != id):
			t.Fatalf("genuine delivery rejected: id=%q offset=%ds: %q, %v", id, offset, got, err)
		case !inWindow && err == nil:
			t.Fatalf("delivery %ds off accepted", offset)
		}
		if err != nil || !idOK {
			return
		}
		if len(body) > 0 {
			tampered := bytes.Clone(body)
			tampered[int(flip)%len(tampered)] ^= 1 << (flip % 8)
			if _, err := stdwebhooks.Verify(key, h, tampered, fuzzNow, 0); !errors.Is(err, stdwebhooks.ErrNoMatch) {
				t.Fatalf("tampered body: %v", err)
			}
		}
		if _, err := stdwebhooks.Verify(append(bytes.Clone(key), 'x'), h, body, fuzzNow, 0); !errors.Is(err, stdwebhooks.ErrNoMatch) {
			t.Fatalf("other key: %v", err)
		}
		other := h.Clone()
		other.Set(stdwebhooks.HeaderID, id+"x")
		if _, err := stdwebhooks.Verify(key, other, body, fuzzNow, 0); !errors.Is(err, stdwebhooks.ErrNoMatch) {
			t.Fatalf("other id: %v", err)
		}
		other = h.Clone()
		other.Set(stdwebhooks.HeaderTimestamp, strconv.FormatInt(ts.Unix()+1, 10))
		if _, err := stdwebhooks.Verify(key, other, body, fuzzNow, 0); err == nil {
			t.Fatal("other timestamp verified")
		}
		// A second value of any of the three headers, before or after the genuine one, is
		// refused: the age check must read the signed timestamp (issue 12).
		for _, name := range []string{stdwebhooks.HeaderTimestamp, stdwebhooks.HeaderID, stdwebhooks.HeaderSignature} {
			for _, first := range []bool{true, false} {
				other = h.Clone()
				extra := strconv.FormatInt(fuzzNow.Unix(), 10)
				if first {
					other[http.CanonicalHeaderKey(name)] = append([]string{extra}, other.Values(name)...)
				} else {
					other.Add(name, extra)
				}
				if _, err := stdwebhooks.Verify(key, other, body, fuzzNow, 0); !errors.Is(err, stdwebhooks.ErrRepeatedHeaders) {
					t.Fatalf("second %s (first %v): %v", name, first, err)
				}
			}
		}
	})
}

// FuzzDecodeSecret: configured secrets are operator input; decoding never panics and never
// yields an empty key.
func FuzzDecodeSecret(f *testing.F) {
	for _, s := range []string{"", "raw", "whsec_", "whsec_c2VjcmV0", "whsec_c2VjcmV0=", "whsec_!!", "whsec_AA", "whsec_=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, err := stdwebhooks.DecodeSecret(s)
		if err == nil && len(key) == 0 {
			t.Fatalf("DecodeSecret(%q): empty key without an error", s)
		}
	})
}
