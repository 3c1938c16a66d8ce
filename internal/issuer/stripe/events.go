package stripe

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
)

// Events: authorizations and transactions normalized to cardwarden.Events, from the listing
// reconciliation reads and from verified webhooks.

// ListAuthorizations lists the card's authorizations and transactions created at or after
// since, oldest first.
func (a *Adapter) ListAuthorizations(ctx context.Context, cardID string, since time.Time) ([]cardwarden.Event, error) {
	const op = "list_authorizations"
	var out []cardwarden.Event
	ap := &stripego.IssuingAuthorizationListParams{Card: stripego.String(cardID)}
	tp := &stripego.IssuingTransactionListParams{Card: stripego.String(cardID)}
	if !since.IsZero() {
		ap.CreatedRange = &stripego.RangeQueryParams{GreaterThanOrEqual: since.Unix()}
		tp.CreatedRange = &stripego.RangeQueryParams{GreaterThanOrEqual: since.Unix()}
	}
	ap.Limit, tp.Limit = stripego.Int64(100), stripego.Int64(100)
	for auth, err := range a.sc.V1IssuingAuthorizations.List(ctx, ap) {
		if err != nil {
			return nil, mapErr(op, err)
		}
		out = append(out, authorizationEvent(auth))
	}
	for txn, err := range a.sc.V1IssuingTransactions.List(ctx, tp) {
		if err != nil {
			return nil, mapErr(op, err)
		}
		out = append(out, transactionEvent(txn))
	}
	// Second granularity: Stripe's created is unix seconds, so filter what the API rounded.
	kept := out[:0]
	for _, e := range out {
		if !e.OccurredAt.Before(since.Truncate(time.Second)) {
			kept = append(kept, e)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool {
		if !kept[i].OccurredAt.Equal(kept[j].OccurredAt) {
			return kept[i].OccurredAt.Before(kept[j].OccurredAt)
		}
		return kept[i].ID < kept[j].ID
	})
	return kept, nil
}

func cardIDOf(c *stripego.IssuingCard) string {
	if c == nil {
		return ""
	}
	return c.ID
}

func merchant(m *stripego.IssuingAuthorizationMerchantData) (string, string) {
	if m == nil {
		return "", ""
	}
	return m.Name, m.CategoryCode
}

// authorizationEvent normalizes an authorization. A declined authorization's amount is 0 at
// Stripe; what was asked for is in its last request_history entry.
func authorizationEvent(au *stripego.IssuingAuthorization) cardwarden.Event {
	name, mcc := merchant(au.MerchantData)
	ev := cardwarden.Event{
		ID: au.ID, Issuer: Name, Kind: cardwarden.KindAuthorization, CardID: cardIDOf(au.Card), AuthorizationID: au.ID,
		Approved: au.Approved, AmountMinor: au.Amount, Currency: strings.ToUpper(string(au.Currency)),
		MerchantName: name, MCC: mcc, OccurredAt: time.Unix(au.Created, 0).UTC(),
	}
	if n := len(au.RequestHistory); n > 0 && au.RequestHistory[n-1] != nil {
		last := au.RequestHistory[n-1]
		if ev.AmountMinor == 0 {
			ev.AmountMinor = last.Amount
		}
		if !au.Approved {
			ev.RawReason = string(last.Reason)
			ev.DeclineReason = normalizeReason(last.Reason)
		}
	}
	if !au.Approved && ev.DeclineReason == "" {
		ev.DeclineReason = cardwarden.ReasonOther
	}
	return ev
}

// normalizeReason maps Stripe's request_history reasons. spending_controls covers amount
// limits and category blocks alike; amount limits are the ones cardwarden sets.
func normalizeReason(r stripego.IssuingAuthorizationRequestHistoryReason) cardwarden.DeclineReason {
	switch r {
	case stripego.IssuingAuthorizationRequestHistoryReasonSpendingControls, "insufficient_funds":
		return cardwarden.ReasonSpendingLimit
	case stripego.IssuingAuthorizationRequestHistoryReasonCardInactive:
		return cardwarden.ReasonCardPaused
	case stripego.IssuingAuthorizationRequestHistoryReasonCardCanceled:
		return cardwarden.ReasonCardClosed
	case "card_expired":
		return cardwarden.ReasonCardExpired
	case stripego.IssuingAuthorizationRequestHistoryReasonSuspectedFraud:
		return cardwarden.ReasonSuspectedFraud
	case stripego.IssuingAuthorizationRequestHistoryReasonNotAllowed:
		return cardwarden.ReasonMerchantBlocked
	}
	return cardwarden.ReasonOther
}

// transactionEvent normalizes a transaction: a capture without an authorization is a
// force-post. Stripe signs amounts from the balance's view (captures negative); ours are
// magnitudes.
func transactionEvent(t *stripego.IssuingTransaction) cardwarden.Event {
	name, mcc := merchant(t.MerchantData)
	amt := t.Amount
	if amt < 0 {
		amt = -amt
	}
	ev := cardwarden.Event{
		ID: t.ID, Issuer: Name, CardID: cardIDOf(t.Card), Approved: true, AmountMinor: amt,
		Currency: strings.ToUpper(string(t.Currency)), MerchantName: name, MCC: mcc, OccurredAt: time.Unix(t.Created, 0).UTC(),
	}
	if t.Authorization != nil {
		ev.AuthorizationID = t.Authorization.ID
	}
	switch {
	case t.Type == stripego.IssuingTransactionTypeRefund:
		ev.Kind = cardwarden.KindRefund
	case t.Authorization == nil || t.Authorization.ID == "":
		ev.Kind = cardwarden.KindForceCapture
	default:
		ev.Kind = cardwarden.KindCapture
	}
	return ev
}

// VerifyWebhook verifies the Stripe-Signature header with stripe-go's webhook package,
// rejects timestamps more than 5 minutes from now in either direction, and converts
// issuing_authorization.created/updated and issuing_transaction.created events. Other event
// types verify and yield no events; so does issuing_authorization.request, which asks for a
// decision (ParseDecisionRequest) and moves no money: the authorization's own
// issuing_authorization.created follows it.
func (a *Adapter) VerifyWebhook(header http.Header, body []byte, now time.Time) ([]cardwarden.Event, error) {
	const op = "verify_webhook"
	evt, err := verifiedEvent(op, a.cfg.WebhookSecret, header, body, now)
	if err != nil {
		return nil, err
	}
	if evt.Data == nil {
		return []cardwarden.Event{}, nil
	}
	switch evt.Type {
	case "issuing_authorization.created":
		var au stripego.IssuingAuthorization
		if err := json.Unmarshal(evt.Data.Raw, &au); err != nil {
			return nil, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "malformed issuing_authorization"}
		}
		return []cardwarden.Event{authorizationEvent(&au)}, nil
	case "issuing_authorization.updated":
		var au stripego.IssuingAuthorization
		if err := json.Unmarshal(evt.Data.Raw, &au); err != nil {
			return nil, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "malformed issuing_authorization"}
		}
		if ev, ok := reversalEvent(evt, &au); ok {
			return []cardwarden.Event{ev}, nil
		}
		return []cardwarden.Event{}, nil
	case stripego.EventTypeIssuingAuthorizationRequest:
		return []cardwarden.Event{}, nil
	case "issuing_transaction.created":
		var t stripego.IssuingTransaction
		if err := json.Unmarshal(evt.Data.Raw, &t); err != nil {
			return nil, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "malformed issuing_transaction"}
		}
		return []cardwarden.Event{transactionEvent(&t)}, nil
	}
	return []cardwarden.Event{}, nil
}

// verifiedEvent checks a Stripe-Signature header against secret and reads the event: exactly
// one header carrying exactly one t= within 5 minutes of now in either direction, and a v1
// signature of the raw body that stripe-go's webhook package accepts. Webhooks and decision
// requests (ParseDecisionRequest) are verified by this one function.
func verifiedEvent(op, secret string, header http.Header, body []byte, now time.Time) (stripego.Event, error) {
	unauthorized := func(msg string) error { return &issuer.Error{Kind: issuer.KindUnauthorized, Op: op, Message: msg} }
	if secret == "" {
		return stripego.Event{}, unauthorized("no webhook secret configured for the stripe issuer")
	}
	sigs := header.Values("Stripe-Signature")
	if len(sigs) != 1 {
		return stripego.Event{}, unauthorized("want exactly one Stripe-Signature header")
	}
	sig := sigs[0]
	// The age check must read the timestamp the signature covers. Stripe's verifier uses the
	// last t= of the header; a header with several (a fresh one prepended to a stale, genuinely
	// signed delivery) is refused outright rather than interpreted.
	ts, ok := signatureTime(sig)
	if !ok {
		return stripego.Event{}, unauthorized("Stripe-Signature must carry exactly one t=<unix time>")
	}
	if d := now.Sub(ts); d > webhookTolerance || d < -webhookTolerance {
		return stripego.Event{}, unauthorized("Stripe-Signature timestamp outside the 5 minute tolerance")
	}
	// stripe-go's own verification on the raw body, with its own (past-only, wall-clock) age
	// check on that same timestamp. Its tolerance is shifted by how far now is from the wall
	// clock (zero in production) plus a second for the time between the two readings, so the
	// exact two-sided window above stays the one that decides.
	tolerance := webhookTolerance + time.Since(now) + time.Second
	if err := webhook.ValidatePayloadWithTolerance(body, sig, secret, tolerance); err != nil {
		return stripego.Event{}, unauthorized(err.Error())
	}
	evt, err := webhook.ConstructEventWithOptions(body, sig, secret, webhook.ConstructEventOptions{
		IgnoreTolerance: true, IgnoreAPIVersionMismatch: true, // the payload fields we read are stable
	})
	if err != nil {
		return stripego.Event{}, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "body is not a Stripe event"}
	}
	return evt, nil
}

// reversalEvent recognises a hold released without a capture: the authorization's amount
// went down while it stayed pending or became reversed. Its ID is the Stripe event's, since
// one authorization can be partially reversed several times.
func reversalEvent(evt stripego.Event, au *stripego.IssuingAuthorization) (cardwarden.Event, bool) {
	if au.Status != stripego.IssuingAuthorizationStatusReversed && au.Status != stripego.IssuingAuthorizationStatusPending {
		return cardwarden.Event{}, false
	}
	prev, ok := evt.Data.PreviousAttributes["amount"].(float64)
	if !ok || int64(prev) <= au.Amount {
		return cardwarden.Event{}, false
	}
	name, mcc := merchant(au.MerchantData)
	return cardwarden.Event{
		ID: evt.ID, Issuer: Name, Kind: cardwarden.KindReversal, CardID: cardIDOf(au.Card), AuthorizationID: au.ID,
		Approved: true, AmountMinor: int64(prev) - au.Amount, Currency: strings.ToUpper(string(au.Currency)),
		MerchantName: name, MCC: mcc, OccurredAt: time.Unix(evt.Created, 0).UTC(),
	}, true
}

// signatureTime reads the one t=<unix> of a Stripe-Signature header, parsing it as stripe-go
// does (key and value split on '=', no spaces trimmed). A header with no timestamp, with more
// than one, or with a key that is "t" only after trimming spaces (which stripe-go would not
// read as the timestamp) is refused.
func signatureTime(sig string) (time.Time, bool) {
	var ts time.Time
	found := 0
	for _, part := range strings.Split(sig, ",") {
		k, v, _ := strings.Cut(part, "=")
		if strings.TrimSpace(k) != "t" {
			continue
		}
		found++
		if k != "t" {
			return time.Time{}, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		ts = time.Unix(n, 0)
	}
	return ts, found == 1
}
