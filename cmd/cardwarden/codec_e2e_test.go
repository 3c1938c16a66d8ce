package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cardwarden/cardwarden/internal/codec"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// With CARDWARDEN_CODEC_KEY set everywhere, the whole stack works on encrypted payloads (the
// CLI included), histories hold ciphertext, and the API's codec endpoint decodes them for the
// Web UI.
func TestCodecEndToEnd(t *testing.T) {
	key := make([]byte, codec.KeySize)
	_, _ = rand.Read(key)
	e := newE2E(t, withCodec(key))
	ctx := context.Background()

	var created struct {
		Agent starter.Agent `json:"agent"`
		Token string        `json:"token"`
	}
	e.cliJSON(&created, "agent", "create", "--id", "sealed-bot", "--daily-limit", "15")
	e.waitCard("sealed-bot", 1)
	var view workflows.StateView
	e.cliJSON(&view, "agent", "freeze", "sealed-bot")
	require.Equal(t, workflows.StatusFrozen, view.Status)
	var info starter.ScheduleInfo
	e.cliJSON(&struct{}{}, "schedule", "create", "--batch-size", "3")
	e.cliJSON(&info, "schedule", "describe")
	require.Equal(t, 3, info.BatchSize, "the schedule's encrypted arguments decode")

	// The history holds ciphertext only.
	it := e.tc.GetWorkflowHistory(ctx, workflows.WorkflowID("sealed-bot"), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	first, err := it.Next()
	require.NoError(t, err)
	input := first.GetWorkflowExecutionStartedEventAttributes().GetInput()
	require.NotEmpty(t, input.GetPayloads())
	p := input.GetPayloads()[0]
	require.Equal(t, codec.MetadataEncoding, string(p.GetMetadata()["encoding"]))
	require.NotContains(t, string(p.GetData()), "sealed-bot")

	// The codec endpoint turns it back into the policy for an operator who holds a token, and
	// for nobody else.
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{p}})
	require.NoError(t, err)
	anon, _ := http.NewRequest("POST", e.apiURL+"/codec/decode", bytes.NewReader(body))
	anon.Header.Set("Content-Type", "application/json")
	anonResp, err := http.DefaultClient.Do(anon)
	require.NoError(t, err)
	anonBody, _ := io.ReadAll(anonResp.Body)
	anonResp.Body.Close()
	require.Equal(t, 401, anonResp.StatusCode)
	require.NotContains(t, string(anonBody), "sealed-bot")
	req, _ := http.NewRequest("POST", e.apiURL+"/codec/decode", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "http://127.0.0.1:8233")
	req.Header.Set("Authorization", "Bearer "+e2eAdminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "http://127.0.0.1:8233", resp.Header.Get("Access-Control-Allow-Origin"))
	var out commonpb.Payloads
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	require.NoError(t, protojson.Unmarshal(buf.Bytes(), &out))
	require.True(t, strings.Contains(string(out.Payloads[0].GetData()), `"agent_id":"sealed-bot"`), string(out.Payloads[0].GetData()))
}
