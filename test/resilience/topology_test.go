//go:build resilience

package resilience

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sqltool "go.temporal.io/server/tools/sql"

	"github.com/cardwarden/cardwarden/deploy/topology"
	"github.com/cardwarden/cardwarden/internal/devstack"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
)

// Environment of this test binary re-executed as Temporal's SQL tool or as a Temporal server on
// PostgreSQL (see TestMain).
const (
	envSQLTool    = "CW_RESILIENCE_SQL_TOOL"
	envTemporalPG = "CW_RESILIENCE_TEMPORAL_PG"
)

// runSQLTool is temporal-sql-tool, Temporal's own code, with the arguments after "--".
func runSQLTool() int {
	args := []string{"temporal-sql-tool"}
	for i, a := range os.Args {
		if a == "--" {
			args = append(args, os.Args[i+1:]...)
			break
		}
	}
	if err := sqltool.RunTool(args); err != nil {
		fmt.Fprintln(os.Stderr, "temporal-sql-tool:", err)
		return 1
	}
	return 0
}

// runTemporalPGChild runs a Temporal server on PostgreSQL until SIGTERM (the configuration is
// the JSON of devstack.Config in the environment).
func runTemporalPGChild(raw string) int {
	var cfg devstack.Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "temporal child:", err)
		return 1
	}
	stack, err := devstack.Start(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "temporal child:", err)
		return 1
	}
	fmt.Println("READY", stack.Address())
	ch := make(chan os.Signal, 1)
	signalNotify(ch)
	<-ch
	stack.Stop()
	return 0
}

// child is one process of the topology, logging to its own file.
type child struct {
	t    *testing.T
	name string
	args []string
	env  []string
	log  *os.File
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	// ready, when set, is a line the process prints once it is ready.
	ready string
}

func (c *child) start() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := exec.Command(c.args[0], c.args[1:]...)
	cmd.Env = append(os.Environ(), c.env...)
	fmt.Fprintf(c.log, "---- start at %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(c.args[1:], " "))
	var readyCh chan bool
	if c.ready != "" {
		out, err := cmd.StdoutPipe()
		if err != nil {
			c.t.Fatal(err)
		}
		cmd.Stderr = c.log
		readyCh = make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			seen := false
			for sc.Scan() {
				fmt.Fprintln(c.log, sc.Text())
				if !seen && strings.HasPrefix(sc.Text(), c.ready) {
					seen = true
					readyCh <- true
				}
			}
			if !seen {
				readyCh <- false
			}
		}()
	} else {
		cmd.Stdout, cmd.Stderr = c.log, c.log
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", c.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.cmd, c.done = cmd, done
	if readyCh != nil {
		select {
		case ok := <-readyCh:
			if !ok {
				c.t.Fatalf("%s exited before it was ready; see %s", c.name, c.log.Name())
			}
		case <-time.After(2 * time.Minute):
			c.t.Fatalf("%s not ready after 2 minutes; see %s", c.name, c.log.Name())
		}
	}
}

func (c *child) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	fmt.Fprintf(c.log, "---- SIGKILL at %s\n", time.Now().Format(time.RFC3339Nano))
	c.cmd = nil
}

func (c *child) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	terminate(c.cmd, c.done, 30*time.Second)
	fmt.Fprintf(c.log, "---- stopped at %s\n", time.Now().Format(time.RFC3339Nano))
	c.cmd = nil
}

// topo is the production topology running for a test.
type topo struct {
	t        *testing.T
	ctx      context.Context
	dir      string
	env      []string // the settings every cardwarden process gets, as in docker-compose.yml
	apiURL   string
	simURL   string
	admin    string
	simKey   string
	st       *store.Store
	children []*child
}

func (tp *topo) newChild(name string, args []string, env []string) *child {
	f, err := os.Create(filepath.Join(tp.dir, name+".log"))
	if err != nil {
		tp.t.Fatal(err)
	}
	c := &child{t: tp.t, name: name, args: args, env: env, log: f}
	tp.children = append(tp.children, c)
	tp.t.Cleanup(func() {
		c.stop()
		f.Close()
		if tp.t.Failed() {
			if b, err := os.ReadFile(f.Name()); err == nil && len(b) > 0 {
				tp.t.Logf("%s log (last 3 KB):\n%s", name, tail(b, 3072))
			}
		}
	})
	return c
}

// cardwarden runs a topology process (deploy/topology) as a child: the binary with the
// process's arguments, placeholders filled, and only the environment the topology names.
func (tp *topo) cardwarden(p topology.Process, name string, values map[string]string) *child {
	tp.t.Helper()
	env := []string{}
	all := map[string]string{}
	for _, kv := range tp.env {
		k, v, _ := strings.Cut(kv, "=")
		all[k] = v
	}
	for _, k := range p.Env {
		v, ok := all[k]
		if !ok {
			tp.t.Fatalf("the topology gives %s %s, which the test does not set", p.Service, k)
		}
		env = append(env, k+"="+v)
	}
	return tp.newChild(name, append([]string{cwBinary}, topology.Fill(p.Args, values)...), env)
}

func (tp *topo) process(service string) topology.Process {
	p, ok := topology.ProcessOf(service)
	if !ok {
		tp.t.Fatalf("topology has no %s", service)
	}
	return p
}

// api calls the cardwarden API with a token (and an Idempotency-Key on POSTs).
func (tp *topo) api(method, path, token string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(tp.ctx, method, tp.apiURL+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if method == http.MethodPost {
		req.Header.Set("Idempotency-Key", "topo-"+randomHex(12))
	}
	resp, err := (&http.Client{Timeout: 90 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(raw, out)
	}
	return resp.StatusCode, nil
}

// sim calls the simulator, retrying 429s and injected errors.
func (tp *topo) sim(method, path string, in, out any) error {
	var b []byte
	if in != nil {
		b, _ = json.Marshal(in)
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(tp.ctx, method, tp.simURL+path, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tp.simKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if (resp.StatusCode == 429 || resp.StatusCode >= 500) && attempt < 20 {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		if out != nil {
			return json.Unmarshal(raw, out)
		}
		return nil
	}
}

func (tp *topo) eventually(timeout time.Duration, what string, cond func() error) {
	tp.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tp.t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// pgParts splits a postgres URL into what Temporal's configuration wants.
func pgParts(t *testing.T, raw string) (addr, user, password, db string) {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	return u.Host, u.User.Username(), pw, strings.TrimPrefix(u.Path, "/")
}

// TestProductionTopology runs cardwarden as production does, every process a child: a Temporal
// server started from the server module on PostgreSQL (its schema set up by Temporal's own SQL
// tool, its namespace and search attributes by `cardwarden setup`), two `cardwarden worker`s,
// `cardwarden serve` and the issuer simulator, with the commands, flags and environment of
// deploy/topology (which docker-compose.yml is checked against). Agents are onboarded through
// the API, purchases flow with the cards they pull, one worker is SIGKILLed and Temporal is
// stopped and started again. Then: one card per generation at the issuer, every issuer event in
// the ledger once, and spend equal at the issuer, in the ledger, in each workflow and on both
// dashboard views.
func TestProductionTopology(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	tp := &topo{t: t, ctx: ctx, dir: t.TempDir(), admin: randomHex(24), simKey: "sim_" + randomHex(16)}

	// PostgreSQL: Temporal's two databases and cardwarden's, on the machine's server.
	temporalDB, visibilityDB, appDB := testdb.PostgresURL(t), testdb.PostgresURL(t), testdb.PostgresURL(t)
	addr, user, pw, tdb := pgParts(t, temporalDB)
	_, _, _, vdb := pgParts(t, visibilityDB)
	host, port, _ := net.SplitHostPort(addr)
	// Twice: the steps run on every start, so a second run must find nothing to do.
	steps := append(topology.TemporalSchemaSteps(), topology.TemporalSchemaSteps()...)
	for i, step := range steps {
		args := append([]string{os.Args[0], "-test.run=^$", "--", "--plugin", topology.TemporalSQLPlugin, "--ep", host, "-p", port, "-u", user},
			topology.Fill(step, map[string]string{"db": tdb, "visibility_db": vdb})...)
		if pw != "" {
			args = append(args, "--pw", pw)
		}
		c := tp.newChild(fmt.Sprintf("temporal-sql-tool-%d", i), args, []string{envSQLTool + "=1"})
		c.start()
		<-c.done
		if code := c.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("temporal-sql-tool %v exited %d; see %s", step, code, c.log.Name())
		}
	}

	// Temporal on PostgreSQL, in a child process so it can be stopped and started again.
	temporalPort := freePort(t)
	cfg, _ := json.Marshal(devstack.Config{Dir: filepath.Join(tp.dir, "temporal"), Port: temporalPort, LogLevel: "warn",
		Postgres: &devstack.Postgres{Addr: addr, User: user, Password: pw, Database: tdb, VisibilityDatabase: vdb}})
	temporal := tp.newChild("temporal", []string{os.Args[0], "-test.run=^$"}, []string{envTemporalPG + "=" + string(cfg)})
	temporal.ready = "READY"
	temporal.start()

	servePort, simPort := freePort(t), freePort(t)
	tp.apiURL = "http://127.0.0.1:" + strconv.Itoa(servePort)
	tp.simURL = "http://127.0.0.1:" + strconv.Itoa(simPort)
	namespace := "cardwarden-topology"
	tp.env = []string{
		"TEMPORAL_ADDRESS=127.0.0.1:" + strconv.Itoa(temporalPort), "TEMPORAL_NAMESPACE=" + namespace,
		"CARDWARDEN_DATABASE_URL=" + appDB, "CARDWARDEN_VAULT_KEY=" + randomHex(32),
		"CARDWARDEN_ISSUER_SIM_URL=" + tp.simURL, "CARDWARDEN_SIM_API_KEY=" + tp.simKey, "CARDWARDEN_SIM_WEBHOOK_SECRET=" + whSecret,
		"CARDWARDEN_ADMIN_TOKEN=" + tp.admin, "CARDWARDEN_PUBLIC_URL=" + tp.apiURL, "CARDWARDEN_TEMPORAL_UI_URL=http://127.0.0.1:8233",
		"CARDWARDEN_LOG_FORMAT=json",
	}

	// setup: migrations, the namespace (a fresh cluster has none) and the search attributes.
	setup := tp.cardwarden(tp.process("setup"), "setup", nil)
	setup.start()
	<-setup.done
	if code := setup.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("cardwarden setup exited %d; see %s", code, setup.log.Name())
	}

	sim := tp.cardwarden(tp.process("issuer-sim"), "issuer-sim", map[string]string{"listen": "127.0.0.1:" + strconv.Itoa(simPort), "serve_url": tp.apiURL})
	sim.start()
	wp := tp.process("cardwarden-worker")
	var workers []*child
	for i := range wp.Replicas {
		w := tp.cardwarden(wp, fmt.Sprintf("worker-%d", i+1), map[string]string{"health": "127.0.0.1:" + strconv.Itoa(freePort(t))})
		w.start()
		workers = append(workers, w)
	}
	serve := tp.cardwarden(tp.process("cardwarden-serve"), "serve", map[string]string{"listen": "127.0.0.1:" + strconv.Itoa(servePort)})
	serve.start()
	tp.eventually(time.Minute, "serve ready", func() error {
		_, err := tp.api(http.MethodGet, "/readyz", "", nil, nil)
		return err
	})
	var err error
	tp.st, err = store.Open(ctx, appDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.st.Close() })

	// Onboard agents through the API.
	const agents = 12
	ids := agentIDs("topo", agents)
	tokens := map[string]string{}
	for _, id := range ids {
		var created struct {
			Token string `json:"token"`
		}
		policy := map[string]any{"agent_id": id, "daily_limit_usd": 500, "rotate_cron": "off", "anomaly": map[string]any{"max_declines": 1000}}
		if _, err := tp.api(http.MethodPost, "/v1/agents", tp.admin, policy, &created); err != nil {
			t.Fatal(err)
		}
		tokens[id] = created.Token
	}

	// Purchases: each agent pulls its card with its own token and buys with the number.
	var numbers sync.Map // agent id → card number
	pull := func(id string) error {
		var c struct {
			Number string `json:"number"`
		}
		if _, err := tp.api(http.MethodGet, "/v1/agents/"+id+"/card", tokens[id], nil, &c); err != nil {
			return err
		}
		numbers.Store(id, c.Number)
		return nil
	}
	for _, id := range ids {
		tp.eventually(2*time.Minute, "card of "+id, func() error { return pull(id) })
	}
	var purchases, approved atomic.Int64
	buyCtx, stopBuying := context.WithCancel(ctx)
	var buying sync.WaitGroup
	for g := range 3 {
		buying.Add(1)
		go func() {
			defer buying.Done()
			r := rand.New(rand.NewPCG(uint64(g), 14))
			for buyCtx.Err() == nil {
				id := ids[r.IntN(len(ids))]
				n, _ := numbers.Load(id)
				var res struct {
					Approved bool `json:"approved"`
				}
				amount := 50 + r.Int64N(450)
				if err := tp.sim(http.MethodPost, "/v1/simulate/authorizations", map[string]any{"card_number": n, "amount_minor": amount, "merchant": "topology"}, &res); err == nil {
					purchases.Add(1)
					if res.Approved {
						approved.Add(1)
					}
				}
				time.Sleep(time.Duration(50+r.IntN(100)) * time.Millisecond)
			}
		}()
	}

	// Rotate a third of the agents (generation 2) and give them their new card.
	time.Sleep(3 * time.Second)
	for _, id := range ids[:agents/3] {
		if _, err := tp.api(http.MethodPost, "/v1/agents/"+id+"/rotate", tp.admin, map[string]string{"reason": "topology test"}, nil); err != nil {
			t.Fatal(err)
		}
		if err := pull(id); err != nil {
			t.Fatal(err)
		}
	}

	// One worker dies; the other carries on.
	time.Sleep(4 * time.Second)
	workers[0].kill()
	t.Log("worker-1 SIGKILLed")
	time.Sleep(4 * time.Second)

	// Temporal goes away and comes back on the same PostgreSQL.
	outage := 15 * time.Second
	temporal.stop()
	t.Logf("Temporal stopped for %s", outage)
	time.Sleep(outage)
	temporal.start()
	t.Log("Temporal started again")
	workers[0].start()
	time.Sleep(8 * time.Second)
	stopBuying()
	buying.Wait()
	t.Logf("%d purchases, %d approved", purchases.Load(), approved.Load())

	// Quiescence: every webhook delivered, every ledger event signalled.
	tp.eventually(4*time.Minute, "every event delivered", func() error {
		var stats struct {
			WebhooksPending int `json:"webhooks_pending"`
		}
		if err := tp.sim(http.MethodGet, "/v1/sim/stats", nil, &stats); err != nil {
			return err
		}
		if stats.WebhooksPending != 0 {
			return fmt.Errorf("%d webhooks pending at the issuer", stats.WebhooksPending)
		}
		var n int
		if err := tp.st.DB().GetContext(ctx, &n, `SELECT count(*) FROM ledger_events WHERE signalled_at IS NULL AND orphaned = false`); err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d ledger events not signalled", n)
		}
		return nil
	})

	// One card per generation at the issuer.
	type simCardPage struct {
		Data    []simCard `json:"data"`
		HasMore bool      `json:"has_more"`
	}
	cards := map[string]map[int]string{}
	cardOwner := map[string]string{}
	dupCards := 0
	after := ""
	for {
		var page simCardPage
		path := "/v1/cards?limit=100"
		if after != "" {
			path += "&starting_after=" + after
		}
		if err := tp.sim(http.MethodGet, path, nil, &page); err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Data {
			agent := c.Metadata["agent_id"]
			gen, _ := strconv.Atoi(c.Metadata["generation"])
			if cards[agent] == nil {
				cards[agent] = map[int]string{}
			}
			if prev, dup := cards[agent][gen]; dup {
				dupCards++
				t.Errorf("agent %s has two cards of generation %d: %s and %s", agent, gen, prev, c.ID)
			}
			cards[agent][gen] = c.ID
			cardOwner[c.ID] = agent
		}
		if !page.HasMore || len(page.Data) == 0 {
			break
		}
		after = page.Data[len(page.Data)-1].ID
	}
	for i, id := range ids {
		want := 1
		if i < agents/3 {
			want = 2
		}
		if len(cards[id]) != want {
			t.Errorf("agent %s has %d cards at the issuer, want %d: %v", id, len(cards[id]), want, cards[id])
		}
	}

	// Every issuer event in the ledger, once; spend equal everywhere.
	type simEvent struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Card string `json:"card_id"`
		Data struct {
			Approved    bool  `json:"approved"`
			AmountMinor int64 `json:"amount_minor"`
		} `json:"data"`
	}
	simApproved := map[string]int64{}
	simEvents := map[string]bool{}
	after = ""
	for {
		var page struct {
			Data    []simEvent `json:"data"`
			HasMore bool       `json:"has_more"`
		}
		path := "/v1/events?type=authorization.created&limit=100"
		if after != "" {
			path += "&starting_after=" + after
		}
		if err := tp.sim(http.MethodGet, path, nil, &page); err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Data {
			simEvents[ev.ID] = true
			if ev.Data.Approved {
				simApproved[cardOwner[ev.Card]] += ev.Data.AmountMinor
			}
		}
		if !page.HasMore || len(page.Data) == 0 {
			break
		}
		after = page.Data[len(page.Data)-1].ID
	}
	var ledgerRows []struct {
		ID    string `db:"issuer_event_id"`
		Count int    `db:"n"`
	}
	if err := tp.st.DB().SelectContext(ctx, &ledgerRows, `SELECT issuer_event_id, count(*) AS n FROM ledger_events WHERE kind = 'authorization' GROUP BY issuer_event_id`); err != nil {
		t.Fatal(err)
	}
	dupEvents, missing := 0, 0
	inLedger := map[string]bool{}
	for _, r := range ledgerRows {
		inLedger[r.ID] = true
		if r.Count != 1 {
			dupEvents++
		}
	}
	for id := range simEvents {
		if !inLedger[id] {
			missing++
		}
	}
	if dupEvents != 0 || missing != 0 || len(ledgerRows) != len(simEvents) {
		t.Errorf("ledger: %d events for the issuer's %d, %d duplicated, %d missing", len(ledgerRows), len(simEvents), dupEvents, missing)
	}

	var fleet struct {
		Agents []struct {
			AgentID       string `json:"agent_id"`
			SpentTodayUSD string `json:"spent_today_usd"`
			Live          bool   `json:"live"`
		} `json:"agents"`
	}
	if _, err := tp.api(http.MethodGet, "/dashboard/api/fleet", tp.admin, nil, &fleet); err != nil {
		t.Fatal(err)
	}
	fleetSpent := map[string]string{}
	for _, a := range fleet.Agents {
		fleetSpent[a.AgentID] = a.SpentTodayUSD
	}
	mismatches := 0
	for _, id := range ids {
		var st struct {
			Budget struct {
				Day   string `json:"day"`
				Spent string `json:"spent_today_usd"`
			} `json:"budget"`
		}
		if _, err := tp.api(http.MethodGet, "/v1/agents/"+id, tp.admin, nil, &st); err != nil {
			t.Fatal(err)
		}
		var page struct {
			Agent struct {
				Spent string `json:"spent_today_usd"`
			} `json:"agent"`
		}
		if _, err := tp.api(http.MethodGet, "/dashboard/api/agents/"+id, tp.admin, nil, &page); err != nil {
			t.Fatal(err)
		}
		var ledgerSpent int64
		_ = tp.st.DB().GetContext(ctx, &ledgerSpent, `SELECT COALESCE(SUM(spent_minor), 0) FROM daily_spend WHERE agent_id = $1 AND day = $2`, id, st.Budget.Day)
		want := fmt.Sprintf("%d.%02d", simApproved[id]/100, simApproved[id]%100)
		ledger := fmt.Sprintf("%d.%02d", ledgerSpent/100, ledgerSpent%100)
		if st.Budget.Spent != want || ledger != want || fleetSpent[id] != want || page.Agent.Spent != want {
			mismatches++
			t.Errorf("agent %s spent today: issuer %s, ledger %s, workflow %s, dashboard fleet %s, dashboard agent page %s",
				id, want, ledger, st.Budget.Spent, fleetSpent[id], page.Agent.Spent)
		}
	}
	t.Logf("figures: %d agents, %d purchases (%d approved), %d issuer events, %d cards, 1 worker SIGKILLed, Temporal down %s; "+
		"duplicate cards %d, duplicate ledger events %d, missing events %d, spend mismatches %d",
		agents, purchases.Load(), approved.Load(), len(simEvents), len(cardOwner), outage, dupCards, dupEvents, missing, mismatches)
}
