package issuersim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"math/big"
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
	// The real-time decision hook's declines (decision.go).
	reasonDecisionDeclined = "decision_declined"
	reasonDecisionTimeout  = "decision_timeout"
)

var validReasons = map[string]bool{
	reasonSpendingLimit: true, reasonCardPaused: true, reasonCardClosed: true, reasonCardExpired: true,
	reasonMerchantBlocked: true, reasonSuspectedFraud: true, reasonOther: true,
	reasonDecisionDeclined: true, reasonDecisionTimeout: true,
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

const snapshotVersion = 1

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
