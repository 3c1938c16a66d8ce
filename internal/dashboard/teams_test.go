package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

// xssMerchant is a merchant name an attacker controls (it comes from the issuer's request):
// the page must show it as text.
const xssMerchant = `<script>window.__xss=1</script><img src=x onerror="window.__xss=1">`

// fakeTeams answers the team state query from a map; teams in block never answer.
type fakeTeams struct {
	mu    sync.Mutex
	views map[string]workflows.TeamView
	block map[string]bool
}

func (f *fakeTeams) TeamState(ctx context.Context, id string) (workflows.TeamView, error) {
	f.mu.Lock()
	v, ok := f.views[id]
	blocked := f.block[id]
	f.mu.Unlock()
	if blocked {
		<-ctx.Done()
		return workflows.TeamView{}, ctx.Err()
	}
	if !ok {
		return workflows.TeamView{}, errors.New("team not found")
	}
	return v, nil
}

// liveStates is what *starter.Client is to the dashboard: agents' and teams' state in one.
type liveStates struct {
	*fakeStates
	*fakeTeams
}

func teamPolicy(id, daily, team string) string {
	b, _ := json.Marshal(map[string]any{"agent_id": id, "daily_limit_usd": daily, "currency": "USD", "timezone": "UTC", "team_id": team})
	return string(b)
}

func researchTeamView() workflows.TeamView {
	monthly := money.MustParse("3000")
	return workflows.TeamView{TeamID: "research", Label: "Research", Day: today,
		Policy:        workflows.TeamPolicy{TeamID: "research", DailyLimitUSD: money.MustParse("200"), MonthlyLimitUSD: &monthly, Timezone: "Europe/Berlin"},
		NextReset:     time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC),
		SpentTodayUSD: money.MustParse("150"), ReservedUSD: money.MustParse("12.50"), RemainingTodayUSD: money.MustParse("37.50"),
		SpentMonthUSD: money.MustParse("1234.56"), Members: []string{"researcher-1", "researcher-2", "ghost-bot"},
		Decisions: []workflows.DecisionView{
			{AuthorizationID: "auth_t1", AgentID: "researcher-1", At: now.Add(-50 * time.Minute), AmountUSD: money.MustParse("5"), Approved: true, Reason: "approved"},
			{AuthorizationID: "auth_pending", AgentID: "researcher-2", At: now.Add(-time.Minute), AmountUSD: money.MustParse("7.50"), Approved: true, Reason: "approved"},
		}}
}

// seedTeams adds a team's agents and their decisions to seed's fleet: researcher-1 and
// researcher-2 in team research, analyst-1 in team analytics, and decisions recorded by the
// decision endpoint (one with a hostile merchant name, one a fallback, one made for a team
// the agent has since left).
func seedTeams(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	for _, a := range []store.Agent{
		{AgentID: "researcher-1", Issuer: "sim", Status: "active", Policy: teamPolicy("researcher-1", "100", "research")},
		{AgentID: "researcher-2", Issuer: "sim", Status: "active", Policy: teamPolicy("researcher-2", "100", "research")},
		{AgentID: "analyst-1", Issuer: "sim", Status: "active", Policy: teamPolicy("analyst-1", "100", "analytics")},
	} {
		require.NoError(t, st.UpsertAgent(ctx, a))
	}
	for _, d := range []store.Decision{
		{AuthorizationID: "auth_t1", AgentID: "researcher-1", TeamID: "research", AmountMinor: 500, Merchant: "Anthropic", MCC: "5734",
			Approved: true, Reason: "approved", LatencyMS: 12, DecidedAt: now.Add(-50 * time.Minute)},
		{AuthorizationID: "auth_t2", AgentID: "researcher-1", TeamID: "research", AmountMinor: 9900, Merchant: xssMerchant, MCC: "7995",
			Approved: false, Reason: "merchant_category_blocked", LatencyMS: 9, DecidedAt: now.Add(-40 * time.Minute)},
		{AuthorizationID: "auth_t3", AgentID: "researcher-2", TeamID: "research", AmountMinor: 2000, Merchant: "OpenAI",
			Approved: false, Reason: "decision_timeout", Fallback: true, LatencyMS: 1500, DecidedAt: now.Add(-30 * time.Minute)},
		{AuthorizationID: "auth_old", AgentID: "researcher-2", TeamID: "other", AmountMinor: 100, Merchant: "Cohere",
			Approved: true, Reason: "approved", DecidedAt: now.Add(-20 * time.Minute)},
		{AuthorizationID: "auth_a1", AgentID: "analyst-1", TeamID: "analytics", AmountMinor: 300, Merchant: "Groq",
			Approved: true, Reason: "approved", DecidedAt: now.Add(-10 * time.Minute)},
	} {
		d.Issuer, d.IssuerCardID, d.Currency = "sim", "card_"+d.AgentID, "USD"
		_, first, err := st.RecordDecision(ctx, d)
		require.NoError(t, err)
		require.True(t, first)
	}
}

// rawGet returns the body of an authorized GET, for checks on the JSON text itself.
func (c apiClient) rawGet(path string) string {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.tok)
	res, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	require.Equal(c.t, http.StatusOK, res.StatusCode, string(b))
	return string(b)
}

func TestAgentDecisionsAndReservations(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		seed(t, st)
		seedTeams(t, st)
		states := newFakeStates()
		v := liveView("researcher-1")
		v.Policy = workflows.Policy{AgentID: "researcher-1", TeamID: "research"}
		v.Budget.ReservedUSD, v.Budget.RemainingTodayUSD = money.MustParse("4.50"), money.MustParse("0")
		v.Decisions = []workflows.DecisionView{ // newest last, as the workflow keeps them
			{AuthorizationID: "auth_t1", At: now.Add(-50 * time.Minute), AmountUSD: money.MustParse("5"), Merchant: "Anthropic", Approved: true, Reason: "approved"},
			{AuthorizationID: "auth_new", At: now.Add(-time.Minute), AmountUSD: money.MustParse("4.50"), Merchant: "Mistral", Approved: true, Reason: "approved"},
		}
		states.views["researcher-1"] = v
		c := serve(t, Config{Store: st, States: states})

		var d AgentDetail
		require.Equal(t, http.StatusOK, c.get(PathAgent+"researcher-1", &d))
		assert.Equal(t, "research", d.Agent.TeamID)
		assert.Equal(t, "4.50", d.Agent.ReservedUSD.String())
		assert.Equal(t, "0.00", d.Agent.RemainingTodayUSD.String())
		require.Len(t, d.Decisions, 3, "two recorded, one only in the workflow's state so far; auth_t1 once")
		assert.Equal(t, DecisionRow{At: now.Add(-time.Minute), AuthorizationID: "auth_new", AgentID: "researcher-1", Approved: true,
			Reason: "approved", AmountUSD: money.MustParse("4.50"), Merchant: "Mistral"}, d.Decisions[0], "newest first; not recorded yet")
		assert.Equal(t, DecisionRow{At: now.Add(-40 * time.Minute), AuthorizationID: "auth_t2", Issuer: "sim", AgentID: "researcher-1", TeamID: "research",
			Approved: false, Reason: "merchant_category_blocked", AmountUSD: money.MustParse("99"), Currency: "USD", Merchant: xssMerchant, MCC: "7995",
			LatencyMS: 9, Recorded: true}, d.Decisions[1])
		assert.Equal(t, "auth_t1", d.Decisions[2].AuthorizationID)
		assert.True(t, d.Decisions[2].Recorded, "the table's row wins over the workflow's copy")

		// From the store alone: the fallback is marked, reservations are unknown (0) and the
		// remaining budget is the limit minus spend.
		require.Equal(t, http.StatusOK, c.get(PathAgent+"researcher-2", &d))
		assert.False(t, d.Agent.Live)
		assert.Equal(t, "research", d.Agent.TeamID, "the stored policy's team")
		assert.Equal(t, "100.00", d.Agent.RemainingTodayUSD.String())
		require.Len(t, d.Decisions, 2)
		assert.Equal(t, "auth_old", d.Decisions[0].AuthorizationID, "an agent's page shows all its decisions, whatever team they were for")
		assert.True(t, d.Decisions[1].Fallback)
		assert.Equal(t, "decision_timeout", d.Decisions[1].Reason)

		assert.Contains(t, c.rawGet(PathAgent+"support-bot"), `"decisions":[]`, "no decisions is [], never null")
	})
}

func TestTeams(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		// No agent names a team: the list is empty, not null.
		empty := serve(t, Config{Store: st})
		assert.Contains(t, empty.rawGet(PathTeams), `"teams":[]`)

		seed(t, st)
		seedTeams(t, st)
		states := newFakeStates()
		r1 := liveView("researcher-1")
		r1.Policy = workflows.Policy{AgentID: "researcher-1", TeamID: "research"}
		r1.Budget.ReservedUSD = money.MustParse("5")
		states.views["researcher-1"] = r1
		teams := &fakeTeams{views: map[string]workflows.TeamView{"research": researchTeamView()}, block: map[string]bool{"analytics": true}}
		// Teams come from States when it has TeamState, as *starter.Client does.
		c := serve(t, Config{Store: st, States: liveStates{states, teams}, StateTimeout: 100 * time.Millisecond,
			TemporalUIURL: "http://127.0.0.1:8233"})

		var l TeamList
		require.Equal(t, http.StatusOK, c.get(PathTeams, &l))
		require.Len(t, l.Teams, 2)
		analytics, research := l.Teams[0], l.Teams[1]
		assert.Equal(t, TeamRow{TeamID: "analytics", Members: []string{"analyst-1"},
			WorkflowURL: "http://127.0.0.1:8233/namespaces/default/workflows/team%2Fanalytics"}, analytics,
			"a team whose workflow does not answer: its id and the members the store knows")
		assert.True(t, research.Live)
		assert.Equal(t, "Research", research.Label)
		assert.Equal(t, "200.00", research.DailyLimitUSD.String())
		assert.Equal(t, "3000.00", research.MonthlyLimitUSD.String())
		assert.Equal(t, "150.00", research.SpentTodayUSD.String())
		assert.Equal(t, "12.50", research.ReservedUSD.String())
		assert.Equal(t, "37.50", research.RemainingTodayUSD.String())
		assert.Equal(t, "1234.56", research.SpentMonthUSD.String())
		assert.Equal(t, int64(75), research.SpentPct)
		assert.Equal(t, "Europe/Berlin", research.Timezone)
		require.NotNil(t, research.NextReset)
		assert.Equal(t, []string{"ghost-bot", "researcher-1", "researcher-2"}, research.Members, "the store's and the workflow's members")

		var d TeamDetail
		require.Equal(t, http.StatusOK, c.get(PathTeam+"research", &d))
		assert.Equal(t, research, d.Team)
		require.Len(t, d.Agents, 3)
		assert.Equal(t, AgentRow{AgentID: "ghost-bot", Status: "unknown", TeamID: "research"}, d.Agents[0], "a member only the workflow knows")
		assert.True(t, d.Agents[1].Live)
		assert.Equal(t, "5.00", d.Agents[1].ReservedUSD.String())
		assert.Equal(t, "researcher-2", d.Agents[2].AgentID)
		assert.False(t, d.Agents[2].Live)
		var ids []string
		for _, x := range d.Decisions {
			ids = append(ids, x.AuthorizationID)
		}
		assert.Equal(t, []string{"auth_pending", "auth_t3", "auth_t2", "auth_t1"}, ids,
			"the team's decisions newest first: not another team's, and the workflow's not yet recorded")
		assert.Equal(t, DecisionRow{At: now.Add(-time.Minute), AuthorizationID: "auth_pending", AgentID: "researcher-2", TeamID: "research",
			Approved: true, Reason: "approved", AmountUSD: money.MustParse("7.50")}, d.Decisions[0])
		assert.True(t, d.Decisions[1].Fallback)
		assert.Equal(t, xssMerchant, d.Decisions[2].Merchant, "kept as it came: the page renders it as text")

		// The team whose workflow does not answer still has a page from the store.
		require.Equal(t, http.StatusOK, c.get(PathTeam+"analytics", &d))
		assert.False(t, d.Team.Live)
		require.Len(t, d.Agents, 1)
		require.Len(t, d.Decisions, 1)
		assert.Equal(t, "Groq", d.Decisions[0].Merchant)

		// A team only its workflow knows (no agent yet) has a page too, with [] lists.
		teams.mu.Lock()
		teams.views["empty"] = workflows.TeamView{TeamID: "empty", Policy: workflows.TeamPolicy{TeamID: "empty", DailyLimitUSD: money.MustParse("10")}}
		teams.mu.Unlock()
		body := c.rawGet(PathTeam + "empty")
		assert.Contains(t, body, `"agents":[]`)
		assert.Contains(t, body, `"decisions":[]`)
		assert.Contains(t, body, `"members":[]`)

		assert.Equal(t, http.StatusNotFound, c.get(PathTeam+"nobody", nil))
		assert.Equal(t, http.StatusNotFound, c.get(PathTeam+"bad%20id", nil))
		anon := c
		anon.tok = ""
		assert.Equal(t, http.StatusUnauthorized, anon.get(PathTeams, nil))
		assert.Equal(t, http.StatusUnauthorized, anon.get(PathTeam+"research", nil))
	})
}

func TestTeamsWithoutTemporal(t *testing.T) {
	st := testdb.Open(t, testdb.SQLiteURL(t))
	seedTeams(t, st)
	c := serve(t, Config{Store: st}) // no States, no Teams: the store's view
	var d TeamDetail
	require.Equal(t, http.StatusOK, c.get(PathTeam+"research", &d))
	assert.False(t, d.Team.Live)
	assert.Equal(t, []string{"researcher-1", "researcher-2"}, d.Team.Members)
	assert.Len(t, d.Decisions, 3)
	assert.Equal(t, http.StatusNotFound, c.get(PathTeam+"empty", nil), "without Temporal a team no agent names is unknown")
	assert.Equal(t, "http://ui/namespaces/default/workflows/team%2Fresearch", TeamWorkflowURL("http://ui", "", "research"))
}
