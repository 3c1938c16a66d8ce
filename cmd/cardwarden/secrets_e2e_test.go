package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cardwarden/cardwarden/workflows"
)

// secretSet is everything that must never leave the vault, the agent's own response, or the
// process: card numbers, CVCs, the vault key, and agents' tokens.
type secretSet struct {
	pans, cvcs []string
	raw        map[string]string // name → value that must not appear anywhere
}

// cvcLabel finds a labelled CVC in prose ("cvc: 123"). Word boundaries keep it from matching
// inside base64 text, where "cvc" followed by digits occurs by chance.
var cvcLabel = regexp.MustCompile(`(?i)\b(cvc|cvv|security[ _-]?code)\b\W{1,6}(\d{3,4})\b`)

// scanText fails on any secret in free text (log lines, history JSON, failure messages).
func (s secretSet) scanText(t require.TestingT, where, text string) {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	for _, pan := range s.pans {
		require.NotContains(t, text, pan, "card number in %s", where)
	}
	for name, v := range s.raw {
		require.NotContains(t, text, v, "%s in %s", name, where)
	}
	for _, m := range cvcLabel.FindAllStringSubmatch(text, -1) {
		for _, cvc := range s.cvcs {
			require.NotEqual(t, cvc, m[2], "a CVC labelled %q in %s", m[1], where)
		}
	}
}

// counterKey matches the keys under which Temporal's SDK logs its own small numeric ids and
// counters ("ActivityID":"100"); a three-digit CVC equal to one of those is a coincidence.
var counterKey = regexp.MustCompile(`\.(ActivityID|Attempt|EventID|ScheduledEventID|StartedEventID|TimerID|NextEventID|WorkflowTaskAttempt)$`)

// scanJSON walks a JSON document: no value may be a CVC or hold a card number, and no key may
// be named like a card secret. (A bare three-digit CVC cannot be searched for in free text
// without matching timestamps and ids, so structured data is checked value by value.)
func (s secretSet) scanJSON(t require.TestingT, where string, data []byte) {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	s.scanText(t, where, string(data))
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, vv := range x {
				lk := strings.ToLower(k)
				require.NotContains(t, []string{"cvc", "cvv", "pan", "card_number", "cardnumber"}, lk, "secret-looking key %s.%s in %s", path, k, where)
				walk(path+"."+k, vv)
			}
		case []any:
			for i, vv := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), vv)
			}
		case string:
			if counterKey.MatchString(path) {
				return
			}
			for _, cvc := range s.cvcs {
				require.NotEqual(t, cvc, x, "CVC at %s in %s", path, where)
			}
		case json.Number:
			for _, pan := range s.pans {
				require.NotEqual(t, pan, x.String(), "card number at %s in %s", path, where)
			}
		}
	}
	walk("$", v)
}

// A full lifecycle through every surface, then: no workflow history, no log line and no
// database column holds a card number, a CVC, the vault key or an agent token in plaintext.
func TestNoSecretsInHistoriesLogsOrDatabase(t *testing.T) {
	e := newE2E(t)
	ctx := context.Background()
	adm := e2eAdminToken

	// Create through the API, with a burst detector that trips fast.
	status, m := e.httpDo("POST", "/v1/agents", adm, []byte(`{"agent_id":"leak-check","daily_limit_usd":25,"label":"audit",
		"anomaly":{"max_declines":3,"window":"10m"}}`))
	require.Equal(t, 201, status, "%v", m)
	token := m["token"].(string)
	st := e.waitCard("leak-check", 1)

	status, _ = e.httpDo("GET", "/v1/agents/leak-check/card", token, nil)
	require.Equal(t, 200, status)
	out, _, code := e.cli("agent", "credentials", "leak-check", "--token", token)
	require.Equal(t, 0, code, out)

	// Spend, then a decline burst that freezes the card.
	e.authorize(st.Card.ID, "5.00", nil)
	for i := 0; i < 3; i++ {
		e.authorize(st.Card.ID, "1.00", map[string]any{"force_decline": "merchant_blocked"})
	}
	e.waitState("leak-check", "frozen by the burst", func(s workflows.StateView) bool { return s.Status == workflows.StatusFrozen })
	_, _, code = e.cli("agent", "unfreeze", "leak-check", "--reason", "reviewed")
	require.Equal(t, 0, code)
	status, _ = e.httpDo("POST", "/v1/agents/leak-check/rotate", adm, []byte(`{"reason":"leak check"}`))
	require.Equal(t, 200, status)
	_, _, code = e.cli("agent", "set-budget", "leak-check", "--daily-limit", "30")
	require.Equal(t, 0, code)
	st = e.waitCard("leak-check", 2)
	e.authorize(st.Card.ID, "2.50", nil)
	e.waitState("leak-check", "the purchase on the new card is counted", func(s workflows.StateView) bool {
		return s.Budget.SpentTodayUSD.String() == "7.50"
	})

	// A fleet rotation, so its workflow's history is checked too.
	time.Sleep(time.Until(st.Card.IssuedAt.Truncate(time.Second).Add(time.Second)))
	_, _, code = e.cli("schedule", "create", "--batch-size", "2")
	require.Equal(t, 0, code)
	_, _, code = e.cli("schedule", "trigger")
	require.Equal(t, 0, code)
	st = e.waitCard("leak-check", 3)

	status, _ = e.httpDo("POST", "/v1/agents/leak-check/token", adm, nil)
	require.Equal(t, 200, status)
	_, _, code = e.cli("agent", "retire", "leak-check")
	require.Equal(t, 0, code)
	e.waitState("leak-check", "retired", func(s workflows.StateView) bool { return s.Status == workflows.StatusRetired })
	// Let in-flight activities (card closes, alerts) finish writing.
	require.Eventually(t, func() bool {
		resp, err := e.tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "ExecutionStatus = 'Running'"})
		return err == nil && len(resp.Executions) == 0
	}, 60*time.Second, 100*time.Millisecond, "workflows still running")

	// Collect the secrets.
	secrets := secretSet{raw: map[string]string{
		"vault key (hex)":    hex.EncodeToString(e.vaultKey),
		"vault key (base64)": base64.StdEncoding.EncodeToString(e.vaultKey),
		"agent token":        token,
	}}
	cards, err := e.store.ListCards(ctx, "leak-check")
	require.NoError(t, err)
	require.Len(t, cards, 3)
	for _, c := range cards {
		pan, cvc := e.reveal(c.IssuerCardID)
		secrets.pans = append(secrets.pans, pan)
		secrets.cvcs = append(secrets.cvcs, cvc)
	}

	// 1. Every workflow history of the namespace, payloads decoded.
	resp, err := e.tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{})
	require.NoError(t, err)
	types := map[string]bool{}
	events := 0
	for _, ex := range resp.Executions {
		types[ex.GetType().GetName()] = true
		where := fmt.Sprintf("history of %s/%s", ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId())
		it := e.tc.GetWorkflowHistory(ctx, ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			events++
			text, err := protojson.Marshal(ev)
			require.NoError(t, err)
			secrets.scanText(t, where, string(text))
			err = proxy.VisitPayloads(ctx, ev, proxy.VisitPayloadsOptions{
				Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
					for _, p := range ps {
						secrets.scanJSON(t, where, p.GetData())
					}
					return ps, nil
				},
			})
			require.NoError(t, err)
		}
	}
	require.True(t, types[workflows.WorkflowType] && types[workflows.FleetRotationWorkflowType], "histories checked: %v", types)
	require.Greater(t, events, 50)

	// 2. Every log line written during the test.
	logs := e.logs.String()
	require.NotEmpty(t, logs)
	for i, line := range strings.Split(logs, "\n") {
		if line != "" {
			secrets.scanJSON(t, fmt.Sprintf("log line %d", i+1), []byte(line))
		}
	}

	// 3. Every column of every table of the database.
	var tables []string
	require.NoError(t, e.store.DB().SelectContext(ctx, &tables, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`))
	require.Contains(t, tables, "card_vault")
	rowsSeen := 0
	for _, table := range tables {
		rows, err := e.store.DB().QueryxContext(ctx, "SELECT * FROM "+table)
		require.NoError(t, err)
		for rows.Next() {
			vals, err := rows.SliceScan()
			require.NoError(t, err)
			rowsSeen++
			for i, v := range vals {
				where := fmt.Sprintf("table %s column %d", table, i)
				switch x := v.(type) {
				case string:
					secrets.scanJSON(t, where, []byte(x))
					for _, cvc := range secrets.cvcs {
						require.NotEqual(t, cvc, x, "CVC in %s", where)
					}
				case []byte:
					for _, pan := range secrets.pans {
						require.False(t, bytes.Contains(x, []byte(pan)), "card number in %s", where)
					}
					for name, raw := range secrets.raw {
						require.False(t, bytes.Contains(x, []byte(raw)), "%s in %s", name, where)
					}
				}
			}
		}
		require.NoError(t, rows.Err())
		rows.Close()
	}
	require.Greater(t, rowsSeen, 10)

	// The check is not vacuous: the vault holds the cards, sealed.
	var sealed int
	require.NoError(t, e.store.DB().GetContext(ctx, &sealed, `SELECT COUNT(*) FROM card_vault`))
	require.Equal(t, 3, sealed)
}

// failRecorder is a require.TestingT that records a failure instead of failing the test.
type failRecorder struct{ failed bool }

type stopScan struct{}

func (f *failRecorder) Errorf(string, ...any) { f.failed = true }
func (f *failRecorder) FailNow()              { panic(stopScan{}) }

func caught(scan func(t require.TestingT)) (failed bool) {
	f := &failRecorder{}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopScan); !ok {
				panic(r)
			}
		}
		failed = f.failed
	}()
	scan(f)
	return f.failed
}

// The scanner itself finds planted leaks and lets ordinary data through.
func TestSecretScannerCatchesLeaks(t *testing.T) {
	s := secretSet{pans: []string{"4000001234567899"}, cvcs: []string{"737"}, raw: map[string]string{"key": "deadbeef"}}
	for name, leak := range map[string]string{
		"pan in text":    `{"msg":"card 4000001234567899 issued"}`,
		"cvc value":      `{"card":{"code":"737"}}`,
		"cvc key":        `{"cvc":"000"}`,
		"pan as number":  `{"n":4000001234567899}`,
		"labelled cvc":   `{"msg":"cvv: 737"}`,
		"raw key":        `{"k":"xxdeadbeefxx"}`,
		"nested in list": `[{"a":["737"]}]`,
	} {
		require.True(t, caught(func(rt require.TestingT) { s.scanJSON(rt, name, []byte(leak)) }), name)
	}
	for name, fine := range map[string]string{
		"last4":     `{"last4":"7899","card_id":"card_abc"}`,
		"timestamp": `{"at":"2026-01-01T10:07:37.737Z","amount_minor":737}`,
		"plain log": `time=2026 level=INFO msg="card credentials revealed" last4=7899`,
		"base64":    `{"data":"eyJjdmM3MzciOjF9Cvc737xQ"}`,
		"sdk ids":   `{"msg":"ExecuteActivity","ActivityID":"737","Attempt":"737"}`,
	} {
		require.False(t, caught(func(rt require.TestingT) { s.scanJSON(rt, name, []byte(fine)) }), name)
	}
}
