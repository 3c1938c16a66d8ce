package issuersim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Card states. Closed is terminal.
const (
	statusActive = "active"
	statusPaused = "paused"
	statusClosed = "closed"
)

// Limit intervals the simulator enforces. Windows are UTC calendar windows, like Stripe's.
const (
	intervalPerAuthorization = "per_authorization"
	intervalDaily            = "daily"
	intervalWeekly           = "weekly"
	intervalMonthly          = "monthly"
	intervalAllTime          = "all_time"
)

var validIntervals = map[string]bool{
	intervalPerAuthorization: true, intervalDaily: true, intervalWeekly: true,
	intervalMonthly: true, intervalAllTime: true,
}

// Decline reasons, normalized as cardwarden's issuer package names them.
const (
	reasonSpendingLimit   = "spending_limit"
	reasonCardPaused      = "card_paused"
	reasonCardClosed      = "card_closed"
	reasonCardExpired     = "card_expired"
	reasonMerchantBlocked = "merchant_blocked"
	reasonSuspectedFraud  = "suspected_fraud"
	reasonOther           = "other"
)

var validReasons = map[string]bool{
	reasonSpendingLimit: true, reasonCardPaused: true, reasonCardClosed: true, reasonCardExpired: true,
	reasonMerchantBlocked: true, reasonSuspectedFraud: true, reasonOther: true,
}

// Card origins: which API dialect created the card. The AI Payment Proxy dialect lists only
// its own cards.
const (
	originNative = "native"
	originAIPP   = "aipaymentproxy"
)

// Event types. Money events carry a moneyEventData payload, card events a card view.
const (
	eventAuthorization = "authorization.created"
	eventCapture       = "capture.created"
	eventForceCapture  = "force_capture.created"
	eventRefund        = "refund.created"
	eventReversal      = "reversal.created"
	eventCardCreated   = "card.created"
	eventCardUpdated   = "card.updated"
)

func isMoneyEvent(typ string) bool {
	switch typ {
	case eventAuthorization, eventCapture, eventForceCapture, eventRefund, eventReversal:
		return true
	}
	return false
}

type limit struct {
	Interval    string `json:"interval"`
	AmountMinor int64  `json:"amount_minor"`
}

type card struct {
	ID          string            `json:"id"`
	Number      string            `json:"number"`
	CVC         string            `json:"cvc"`
	ExpMonth    int               `json:"exp_month"`
	ExpYear     int               `json:"exp_year"`
	Status      string            `json:"status"`
	Currency    string            `json:"currency"`
	Label       string            `json:"label"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Limits      []limit           `json:"limits"`
	AllowedMCCs []string          `json:"allowed_mccs,omitempty"`
	BlockedMCCs []string          `json:"blocked_mccs,omitempty"`
	Origin      string            `json:"origin"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	ClosedAt    *time.Time        `json:"closed_at,omitempty"`
}

// expiresAt is the first instant the card is expired: the start of the month after expiry.
func (c *card) expiresAt() time.Time {
	return time.Date(c.ExpYear, time.Month(c.ExpMonth)+1, 1, 0, 0, 0, 0, time.UTC)
}

func (c *card) last4() string { return c.Number[len(c.Number)-4:] }

// Authorization states.
const (
	authPending  = "pending"
	authCaptured = "captured"
	authReversed = "reversed"
	authDeclined = "declined"
)

type authorization struct {
	ID          string    `json:"id"`
	CardID      string    `json:"card_id"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Approved    bool      `json:"approved"`
	Reason      string    `json:"reason,omitempty"`
	Merchant    string    `json:"merchant,omitempty"`
	MCC         string    `json:"mcc,omitempty"`
	Status      string    `json:"status"`
	HoldMinor   int64     `json:"hold_minor"` // what is still held against the limits
	CreatedAt   time.Time `json:"created_at"`
}

// Transaction kinds.
const (
	txnCapture      = "capture"
	txnForceCapture = "force_capture"
	txnRefund       = "refund"
)

type transaction struct {
	ID              string    `json:"id"`
	CardID          string    `json:"card_id"`
	AuthorizationID string    `json:"authorization_id,omitempty"`
	RefundOf        string    `json:"refund_of,omitempty"`
	Kind            string    `json:"kind"`
	AmountMinor     int64     `json:"amount_minor"` // always positive; refunds credit it back
	RefundedMinor   int64     `json:"refunded_minor,omitempty"`
	Currency        string    `json:"currency"`
	Merchant        string    `json:"merchant,omitempty"`
	MCC             string    `json:"mcc,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
}

type event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	CardID    string          `json:"card_id"`
	Data      json.RawMessage `json:"data"`
}

// moneyEventData is the payload of every money event, the same for webhooks and listings.
type moneyEventData struct {
	CardID           string `json:"card_id"`
	AuthorizationID  string `json:"authorization_id,omitempty"`
	TransactionID    string `json:"transaction_id,omitempty"`
	Approved         bool   `json:"approved"`
	Reason           string `json:"reason,omitempty"`
	AmountMinor      int64  `json:"amount_minor"`
	Currency         string `json:"currency"`
	Merchant         string `json:"merchant,omitempty"`
	MCC              string `json:"mcc,omitempty"`
	AuthorizedMinor  int64  `json:"authorized_minor,omitempty"`
	OvercaptureMinor int64  `json:"overcapture_minor,omitempty"`
}

// idemRecord is a stored response for an Idempotency-Key.
type idemRecord struct {
	Key         string          `json:"key"`
	Fingerprint string          `json:"fingerprint"`
	Status      int             `json:"status"`
	Body        json.RawMessage `json:"body"`
	CreatedAt   time.Time       `json:"created_at"`
}

// state is everything the simulator knows. It is guarded by Server.mu.
type state struct {
	cards    map[string]*card
	byNumber map[string]*card
	auths    map[string]*authorization
	txns     map[string]*transaction
	// Per card, in creation order: what limit evaluation walks.
	cardAuths map[string][]*authorization
	cardTxns  map[string][]*transaction
	events    []*event
	eventByID map[string]*event
	idem      map[string]*idemRecord
	// pending are events not yet acknowledged by the webhook endpoint.
	pending map[string]bool
}

func newState() *state {
	return &state{
		cards: map[string]*card{}, byNumber: map[string]*card{},
		auths: map[string]*authorization{}, txns: map[string]*transaction{},
		cardAuths: map[string][]*authorization{}, cardTxns: map[string][]*transaction{},
		eventByID: map[string]*event{}, idem: map[string]*idemRecord{}, pending: map[string]bool{},
	}
}

func (st *state) addCard(c *card) {
	st.cards[c.ID] = c
	st.byNumber[c.Number] = c
}

func (st *state) addAuth(a *authorization) {
	st.auths[a.ID] = a
	st.cardAuths[a.CardID] = append(st.cardAuths[a.CardID], a)
}

func (st *state) addTxn(t *transaction) {
	st.txns[t.ID] = t
	st.cardTxns[t.CardID] = append(st.cardTxns[t.CardID], t)
}

func (st *state) addEvent(e *event) {
	st.events = append(st.events, e)
	st.eventByID[e.ID] = e
}

// sortedCards returns cards oldest first, ties broken by id, for stable listings.
func (st *state) sortedCards() []*card {
	out := make([]*card, 0, len(st.cards))
	for _, c := range st.cards {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// snapshot is the persisted form of state.
type snapshot struct {
	Version        int              `json:"version"`
	SavedAt        time.Time        `json:"saved_at"`
	ClockOffset    time.Duration    `json:"clock_offset"`
	Cards          []*card          `json:"cards"`
	Authorizations []*authorization `json:"authorizations"`
	Transactions   []*transaction   `json:"transactions"`
	Events         []*event         `json:"events"`
	Idempotency    []*idemRecord    `json:"idempotency"`
	Pending        []string         `json:"pending_webhooks"`
}

const snapshotVersion = 1

func (st *state) snapshot(now time.Time, offset time.Duration) *snapshot {
	s := &snapshot{Version: snapshotVersion, SavedAt: now, ClockOffset: offset, Events: st.events}
	s.Cards = st.sortedCards()
	for _, c := range s.Cards {
		s.Authorizations = append(s.Authorizations, st.cardAuths[c.ID]...)
		s.Transactions = append(s.Transactions, st.cardTxns[c.ID]...)
	}
	for _, r := range st.idem {
		s.Idempotency = append(s.Idempotency, r)
	}
	sort.Slice(s.Idempotency, func(i, j int) bool { return s.Idempotency[i].Key < s.Idempotency[j].Key })
	for id := range st.pending {
		s.Pending = append(s.Pending, id)
	}
	sort.Strings(s.Pending)
	return s
}

func stateFromSnapshot(s *snapshot) (*state, error) {
	if s.Version != snapshotVersion {
		return nil, fmt.Errorf("state file version %d, want %d", s.Version, snapshotVersion)
	}
	st := newState()
	for _, c := range s.Cards {
		st.addCard(c)
	}
	for _, a := range s.Authorizations {
		st.addAuth(a)
	}
	for _, t := range s.Transactions {
		st.addTxn(t)
	}
	for _, e := range s.Events {
		st.addEvent(e)
	}
	for _, r := range s.Idempotency {
		st.idem[r.Key] = r
	}
	for _, id := range s.Pending {
		if st.eventByID[id] != nil {
			st.pending[id] = true
		}
	}
	return st, nil
}

// loadSnapshot reads path; a missing file is an empty state, not an error, so the first run
// of `issuer-sim --state FILE` just works.
func loadSnapshot(path string) (*snapshot, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse state %s: %w", path, err)
	}
	return &s, nil
}

// writeFileAtomic writes through a temp file and a rename so a crash mid-write never leaves a
// truncated state file behind. The file holds card numbers, hence 0600.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("state temp file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("state chmod: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename state: %w", err)
	}
	return nil
}

// newID returns prefix + 24 random hex characters.
func newID(prefix string) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return prefix + hex.EncodeToString(b[:])
}

// randDigits returns n random decimal digits.
func randDigits(n int) string {
	b := make([]byte, n)
	for i := range b {
		d, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			panic(err)
		}
		b[i] = byte('0' + d.Int64())
	}
	return string(b)
}

// newCardNumber returns a 16-digit Visa-range number with a valid Luhn check digit, so
// anything that validates card numbers accepts it.
func newCardNumber() string {
	body := "4" + randDigits(14)
	return body + string(rune('0'+luhnCheckDigit(body)))
}

func luhnCheckDigit(body string) int {
	sum := 0
	double := true // the check digit will be appended, so the rightmost body digit doubles
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return (10 - sum%10) % 10
}
