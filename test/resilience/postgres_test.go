//go:build resilience

package resilience

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

// pgCluster is a private PostgreSQL cluster for one test: its own data directory and port, so
// restarting it disturbs nobody else using the machine's shared server.
type pgCluster struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	root bool // running as root: run the server as the postgres user
}

// startPrivatePostgres initialises and starts a throwaway cluster from the installed
// PostgreSQL binaries. Without them the test is skipped, or fails under
// CARDWARDEN_REQUIRE_POSTGRES=1 (CI).
func startPrivatePostgres(t *testing.T) (*pgCluster, string) {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		testdb.SkipWithoutPostgres(t, "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
	}
	c := &pgCluster{t: t, bin: filepath.Dir(matches[len(matches)-1]), port: freePort(t), root: os.Geteuid() == 0}
	dir, err := os.MkdirTemp("", "cw-resilience-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	t.Cleanup(func() {
		_ = c.run("pg_ctl", "-D", c.dir, "-m", "immediate", "-w", "stop")
		os.RemoveAll(c.dir)
	})
	if c.root {
		u, err := user.Lookup("postgres")
		if err != nil {
			testdb.SkipWithoutPostgres(t, "running as root and there is no postgres user to run a cluster as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.run("initdb", "-D", c.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v", err)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=100", c.port, c.dir)
	if err := c.run("pg_ctl", "-D", c.dir, "-o", opts, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		t.Fatalf("start private postgres: %v", err)
	}
	base := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	db, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE cardwarden_resilience"); err != nil {
		t.Fatal(err)
	}
	return c, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/cardwarden_resilience?sslmode=disable", c.port)
}

func (c *pgCluster) run(tool string, args ...string) error {
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.root {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	// The server pg_ctl starts must not hold our pipe open (-l sends its output to a file),
	// and if it does, do not wait for it.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %w\n%s", tool, args, err, out)
	}
	return nil
}

// restart stops the server the way a crash does (immediate: no checkpoint, clients cut off)
// and starts it again with the same options.
func (c *pgCluster) restart() {
	c.t.Helper()
	if err := c.run("pg_ctl", "-D", c.dir, "-l", filepath.Join(c.dir, "server.log"), "-m", "immediate", "-w", "-t", "60", "restart"); err != nil {
		c.t.Fatalf("restart postgres: %v", err)
	}
}

// TestPostgresRestart restarts the application database twice while issuer webhooks stream in
// and the worker (its own process) runs agents, then checks that every event the API
// acknowledged is in the ledger and counted once in daily spend and in its agent's workflow.
// Deliveries refused during the restart are retried until acknowledged, as an issuer does.
func TestPostgresRestart(t *testing.T) {
	pg, url := startPrivatePostgres(t)
	h := newHarness(t, harnessOptions{dbURL: url, redelivery: true})
	h.startWorkerProcess()
	ids := agentIDs("pg", 6)
	h.startAgents(ids, func(id string) workflows.Policy {
		return policy(id, "1000000", func(p *workflows.Policy) { p.RotateCron = workflows.RotateOff })
	})
	cards := h.currentCards(ids)

	type delivery struct {
		id, agent string
		amount    int64
		body      []byte
		acked     bool
	}
	var (
		mu      sync.Mutex
		all     []*delivery
		refused = map[int]int{}
	)
	post := func(d *delivery) {
		code, _ := h.postWebhook(d.id, d.body, time.Now(), h.whKey)
		mu.Lock()
		defer mu.Unlock()
		if code == http.StatusOK {
			d.acked = true
		} else {
			refused[code]++
		}
	}
	// Stream for 24 s at about 40 events/s from 4 senders; restart Postgres at 5 s and 14 s.
	ctx, cancel := context.WithTimeout(h.ctx, 24*time.Second)
	defer cancel()
	began := time.Now()
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		for _, at := range []time.Duration{5 * time.Second, 14 * time.Second} {
			select {
			case <-time.After(time.Until(began.Add(at))):
				r0 := time.Now()
				pg.restart()
				t.Logf("postgres restarted (immediate stop, start) at %s, took %s", at, time.Since(r0).Round(time.Millisecond))
			case <-ctx.Done():
				t.Errorf("stream ended before the restart at %s", at)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for sender := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				agent := ids[(sender+i)%len(ids)]
				id := fmt.Sprintf("evt_pg_%d_%05d", sender, i)
				d := &delivery{id: id, agent: agent, amount: int64(1 + i%9)}
				d.body = approvedEvent(id, cards[agent], d.amount, time.Now())
				mu.Lock()
				all = append(all, d)
				mu.Unlock()
				post(d)
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	<-restarted
	mu.Lock()
	ackedDuring := 0
	for _, d := range all {
		if d.acked {
			ackedDuring++
		}
	}
	t.Logf("%d deliveries, %d acknowledged while Postgres restarted twice, refused: %v", len(all), ackedDuring, refused)
	mu.Unlock()

	// Nothing acknowledged is lost: every acknowledged event is in the ledger now.
	for _, d := range all {
		if !d.acked {
			continue
		}
		if _, err := h.st.GetEvent(h.ctx, "sim", d.id); err != nil {
			t.Errorf("acknowledged event %s not in the ledger: %v", d.id, err)
		}
	}
	// The issuer retries what was refused until it is acknowledged.
	h.eventually(2*time.Minute, "refused deliveries acknowledged on retry", func() error {
		pending := 0
		for _, d := range all {
			if !d.acked {
				post(d)
				if !d.acked {
					pending++
				}
			}
		}
		if pending > 0 {
			return fmt.Errorf("%d deliveries still refused", pending)
		}
		return nil
	})
	// Each event counted once: ledger rows, daily spend and each workflow's spend.
	want := map[string]int64{}
	for _, d := range all {
		want[d.agent] += d.amount
	}
	rows, err := countRows(h, `SELECT count(*) FROM ledger_events WHERE issuer_event_id LIKE 'evt_pg_%'`)
	if err != nil {
		t.Fatal(err)
	}
	if rows != len(all) {
		t.Errorf("ledger has %d rows for %d events", rows, len(all))
	}
	for _, id := range ids {
		var spent int64
		if err := h.st.DB().GetContext(h.ctx, &spent, h.st.DB().Rebind(`SELECT COALESCE(SUM(spent_minor),0) FROM daily_spend WHERE agent_id = ?`), id); err != nil {
			t.Fatal(err)
		}
		if spent != want[id] {
			t.Errorf("agent %s: daily_spend %s, want %s", id, money.Amount(spent), money.Amount(want[id]))
		}
		h.eventually(2*time.Minute, "workflow spend of "+id, func() error {
			st, err := h.state(id)
			if err != nil {
				return err
			}
			if st.Budget.SpentTodayUSD.Minor() != want[id] {
				return fmt.Errorf("spent today %s, want %s", st.Budget.SpentTodayUSD, money.Amount(want[id]))
			}
			return nil
		})
	}
}
