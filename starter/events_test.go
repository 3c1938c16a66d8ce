package starter

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/mocks"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/workflows"
)

func seedCard(t *testing.T, s *store.Store, agentID, cardID, tz string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, s.UpsertAgent(ctx, store.Agent{AgentID: agentID, Issuer: "sim", Status: "active", Policy: `{"timezone":"` + tz + `"}`}))
	require.NoError(t, s.RecordCard(ctx, store.Card{AgentID: agentID, Generation: 1, Issuer: "sim", IssuerCardID: cardID,
		Last4: "4242", ExpMonth: 12, ExpYear: 2030, Status: "active", DailyLimitMinor: 5000}))
}

func TestReportEventSignalsRecordsAndRedelivers(t *testing.T) {
	s := testdb.Open(t, testdb.SQLiteURL(t))
	ctx := context.Background()
	seedCard(t, s, "a1", "card_1", "UTC")
	tc := &mocks.Client{}
	c := New(tc, Options{Store: s})
	ev := cardwarden.Event{ID: "ev_1", Kind: cardwarden.KindAuthorization, CardID: "card_1", Approved: true, AmountMinor: 500, Currency: "USD", OccurredAt: time.Now()}

	// Temporal is down: the event is recorded, not signalled, and the caller learns it.
	tc.On("SignalWorkflow", mock.Anything, "agent/a1", "", workflows.SignalCardEvent, mock.Anything).
		Return(serviceerror.NewUnavailable("connection refused")).Once()
	res, err := c.ReportEvent(ctx, "sim", ev)
	require.ErrorIs(t, err, ErrUnavailable)
	require.True(t, res.New)
	stored, err := s.GetEvent(ctx, "sim", "ev_1")
	require.NoError(t, err)
	require.False(t, stored.SignalledAt.Valid)

	// Redelivery catches up once Temporal is back.
	tc.On("SignalWorkflow", mock.Anything, "agent/a1", "", workflows.SignalCardEvent, mock.MatchedBy(func(e cardwarden.Event) bool {
		return e.ID == "ev_1" && e.Issuer == "sim" && e.AmountMinor == 500 && e.Recorded // the workflow must not record it again
	})).Return(nil).Once()
	n, err := c.RedeliverPending(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	stored, err = s.GetEvent(ctx, "sim", "ev_1")
	require.NoError(t, err)
	require.True(t, stored.SignalledAt.Valid)

	// A replay of a delivered event is acknowledged without a signal.
	res, err = c.ReportEvent(ctx, "sim", ev)
	require.NoError(t, err)
	require.Equal(t, EventResult{EventID: "ev_1", AgentID: "a1"}, res)

	// An event nobody owns is recorded orphaned and alerted once; no workflow is touched.
	orphan := ev
	orphan.ID, orphan.CardID = "ev_2", "card_nobody"
	res, err = c.ReportEvent(ctx, "sim", orphan)
	require.NoError(t, err)
	require.True(t, res.Orphaned)
	alerts, err := s.ListAlerts(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	require.Equal(t, AlertOrphanedEvent, alerts[0].Kind)
	require.Equal(t, store.AlertSent, alerts[0].Status)

	_, err = c.ReportEvent(ctx, "sim", cardwarden.Event{Kind: cardwarden.KindAuthorization})
	require.ErrorIs(t, err, ErrInvalidRequest)
	tc.AssertExpectations(t)
}

// Money that moves on a retired agent's card (a force-post after retirement) is recorded and
// alerted, once per event.
func TestEventOnARetiredAgentsCardAlerts(t *testing.T) {
	s := testdb.Open(t, testdb.SQLiteURL(t))
	ctx := context.Background()
	seedCard(t, s, "gone", "card_9", "UTC")
	tc := &mocks.Client{}
	c := New(tc, Options{Store: s})
	tc.On("SignalWorkflow", mock.Anything, "agent/gone", "", workflows.SignalCardEvent, mock.Anything).
		Return(serviceerror.NewNotFound("workflow execution already completed"))
	force := cardwarden.Event{ID: "ev_force", Kind: cardwarden.KindForceCapture, CardID: "card_9", Approved: true, AmountMinor: 7000, Currency: "USD", OccurredAt: time.Now()}
	for range 2 {
		_, err := c.ReportEvent(ctx, "sim", force)
		require.NoError(t, err)
	}
	alerts, err := s.ListAlerts(ctx, "gone", 10)
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	require.Equal(t, AlertRetiredCardEvent, alerts[0].Kind)
	require.Equal(t, "sim/ev_force", alerts[0].Period)
	require.Contains(t, alerts[0].Message, "70.00")

	// An absurd amount is refused before anything is recorded.
	_, err = c.ReportEvent(ctx, "sim", cardwarden.Event{ID: "ev_huge", Kind: cardwarden.KindCapture, CardID: "card_9", AuthorizationID: "a", Approved: true, AmountMinor: 9223372036854775807})
	require.ErrorIs(t, err, ErrInvalidRequest)
	_, err = s.GetEvent(ctx, "sim", "ev_huge")
	require.True(t, store.IsNotFound(err))
}

// RecordEvent records and names what is left to deliver; DeliverEvents sends one event as an
// object (what every worker reads) and several as an array, at most MaxEventsPerSignal a
// signal, in order, and marks them signalled; RedeliverPending gives each agent its events in
// one signal.
func TestDeliverEventsBatchesAnAgentsEvents(t *testing.T) {
	s := testdb.Open(t, testdb.SQLiteURL(t))
	ctx := context.Background()
	seedCard(t, s, "a1", "card_1", "UTC")
	seedCard(t, s, "a2", "card_2", "UTC")
	tc := &mocks.Client{}
	c := New(tc, Options{Store: s})
	at := time.Now()
	var evs []cardwarden.Event
	for i := range MaxEventsPerSignal + 2 {
		ev := cardwarden.Event{ID: fmt.Sprintf("ev_%03d", i), Kind: cardwarden.KindAuthorization, CardID: "card_1", Approved: true,
			AmountMinor: 1, Currency: "USD", OccurredAt: at}
		res, err := c.RecordEvent(ctx, "sim", ev)
		require.NoError(t, err)
		require.True(t, res.New)
		require.False(t, res.Signalled)
		require.NotNil(t, res.Undelivered)
		evs = append(evs, *res.Undelivered)
	}
	var payloads []any
	tc.On("SignalWorkflow", mock.Anything, "agent/a1", "", workflows.SignalCardEvent, mock.Anything).
		Run(func(args mock.Arguments) { payloads = append(payloads, args.Get(4)) }).Return(nil)
	require.NoError(t, c.DeliverEvents(ctx, "a1", evs))
	require.Len(t, payloads, 2)
	first, ok := payloads[0].([]cardwarden.Event)
	require.True(t, ok, "several events go as an array: %T", payloads[0])
	require.Len(t, first, MaxEventsPerSignal)
	require.Equal(t, "ev_000", first[0].ID)
	require.True(t, first[0].Recorded, "the workflow must not record them again")
	rest, ok := payloads[1].([]cardwarden.Event)
	require.True(t, ok)
	require.Equal(t, []string{"ev_100", "ev_101"}, []string{rest[0].ID, rest[1].ID})
	pending, err := s.UnsignalledEvents(ctx, time.Now().Add(time.Hour), 1000)
	require.NoError(t, err)
	require.Empty(t, pending, "every delivered event is marked signalled")

	// Redelivery: two agents' events recorded while their signals failed go one signal each.
	payloads = nil
	tc.On("SignalWorkflow", mock.Anything, "agent/a2", "", workflows.SignalCardEvent, mock.Anything).
		Run(func(args mock.Arguments) { payloads = append(payloads, args.Get(4)) }).Return(nil)
	for i, card := range []string{"card_1", "card_2", "card_1", "card_2"} {
		_, err := c.RecordEvent(ctx, "sim", cardwarden.Event{ID: fmt.Sprintf("ev_late_%d", i), Kind: cardwarden.KindAuthorization,
			CardID: card, Approved: true, AmountMinor: 1, Currency: "USD", OccurredAt: at})
		require.NoError(t, err)
	}
	n, err := c.RedeliverPending(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.Len(t, payloads, 2, "one signal per agent")
	pairs := 0
	for _, p := range payloads {
		if evs, ok := p.([]cardwarden.Event); ok && len(evs) == 2 {
			pairs++
		}
	}
	require.Equal(t, 2, pairs, "each agent's two events in one signal: %+v", payloads)
}
