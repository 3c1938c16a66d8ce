package main

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/server/temporaltest"

	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// On a namespace nobody ran `cardwarden setup` on (no AgentId, CardStatus or Issuer search
// attribute), creating an agent is not a usage error (it was "invalid request": HTTP 422, exit
// code 2 in the CLI): it is a deployment not set up, ErrUnavailable (HTTP 503, exit code 1), and
// the message says what to run.
func TestUnpreparedNamespaceSaysRunSetup(t *testing.T) {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	c := starter.New(ts.GetDefaultClient(), starter.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.StartAgent(ctx, workflows.Policy{AgentID: "unprepared", DailyLimitUSD: money.MustParse("10")})
	require.Error(t, err)
	require.True(t, errors.Is(err, starter.ErrUnavailable), "%v", err)
	require.NotErrorIs(t, err, starter.ErrInvalidRequest)
	require.Contains(t, err.Error(), "cardwarden setup")

	// The CLI's exit code for the API's answer to it.
	require.Equal(t, exitFailure, exitCode(cliErr(&apiError{Status: http.StatusServiceUnavailable, Code: "temporal_unavailable"})))
}
