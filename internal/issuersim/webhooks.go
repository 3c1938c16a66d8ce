package issuersim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
)

// startDeliveryLocked starts delivering e in the background: at least once, retried with
// exponential backoff until the endpoint answers 2xx, with the same webhook-id every time.
// Callers hold s.mu.
func (s *Server) startDeliveryLocked(e *event) {
	if s.closed || s.webhookURL == "" {
		return // stays pending; a restart with the same state file resumes it
	}
	body, err := json.Marshal(toEventJSON(e))
	if err != nil {
		s.log.Error("issuersim: encode webhook", "event", e.ID, "err", err)
		return
	}
	s.wg.Add(1)
	go s.deliver(e.ID, body)
}

func (s *Server) deliver(id string, body []byte) {
	defer s.wg.Done()
	f := s.Faults()
	if f.DropWebhooks > 0 && randFloat() < f.DropWebhooks {
		// Lost for good: only a listing of the card's events will ever show it.
		s.mu.Lock()
		delete(s.st.pending, id)
		s.changedLocked(false)
		s.mu.Unlock()
		s.webhooksDropped.Add(1)
		return
	}
	var hold time.Duration
	if f.ReorderWebhooks {
		// A random head start per event is enough to make later events overtake earlier ones.
		hold = time.Duration(rand.Int64N(int64(300 * time.Millisecond)))
	}
	if f.WebhookDelayMS > 0 {
		hold += time.Duration(rand.Int64N(f.WebhookDelayMS*int64(time.Millisecond) + 1))
	}
	if hold > 0 && !s.sleep(hold) {
		return
	}
	for attempt := 0; ; attempt++ {
		if s.send(id, body) {
			s.mu.Lock()
			delete(s.st.pending, id)
			s.changedLocked(false)
			s.mu.Unlock()
			if d := s.Faults().DuplicateWebhooks; d > 0 && randFloat() < d {
				s.send(id, body) // a duplicate: same id, same body; its outcome does not matter
			}
			return
		}
		if !s.sleep(s.backoff(attempt)) {
			return
		}
	}
}

// backoff is retryInit·2^attempt capped at retryMax, with ±20% jitter so a recovering
// endpoint is not hit by every pending event at the same instant.
func (s *Server) backoff(attempt int) time.Duration {
	d := s.retryMax
	if attempt < 30 {
		if x := s.retryInit << attempt; x > 0 && x < s.retryMax {
			d = x
		}
	}
	jitter := 0.8 + 0.4*randFloat()
	return time.Duration(float64(d) * jitter)
}

// sleep waits d or until Close; it reports whether to carry on.
func (s *Server) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stop:
		return false
	}
}

// send makes one delivery attempt and reports whether the endpoint acknowledged it.
func (s *Server) send(id string, body []byte) bool {
	select {
	case s.sendSem <- struct{}{}:
	case <-s.stop:
		return false
	}
	defer func() { <-s.sendSem }()
	ctx, cancel := context.WithTimeout(s.stopCtx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.webhookURL, bytes.NewReader(body))
	if err != nil {
		s.log.Error("issuersim: webhook request", "err", err)
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cardwarden-issuersim")
	// Signed at send time: the timestamp says when this attempt was made, so a retry an hour
	// later is still fresh for the receiver.
	stdwebhooks.Sign(req.Header, s.webhookKey, id, time.Now(), body)
	s.webhooksSent.Add(1)
	resp, err := s.hc.Do(req)
	if err != nil {
		s.webhooksFailed.Add(1)
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		s.webhooksFailed.Add(1)
		return false
	}
	s.webhooksAcked.Add(1)
	return true
}
