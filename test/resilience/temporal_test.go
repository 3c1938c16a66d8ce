//go:build resilience

package resilience

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden/internal/config"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

// temporalProc is the embedded file-backed Temporal server in a child process.
type temporalProc struct {
	t    *testing.T
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

func startTemporalProcess(t *testing.T, dir string, port int) *temporalProc {
	t.Helper()
	f, err := os.Create(dir + ".log")
	if err != nil {
		t.Fatal(err)
	}
	p := &temporalProc{t: t, dir: dir, port: port, log: f}
	p.start()
	t.Cleanup(func() { p.stop(); f.Close() })
	return p
}

func (p *temporalProc) start() {
	p.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envTemporalDir+"="+p.dir, envTemporalPort+"="+strconv.Itoa(p.port))
	cmd.Stderr = p.log
	out, err := cmd.StdoutPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY") {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			p.t.Fatalf("temporal child exited before it was ready; see %s", p.log.Name())
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		p.t.Fatal("temporal child not ready after 90s")
	}
	p.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(p.done) }()
	p.cmd = cmd
}

func (p *temporalProc) stop() {
	if p.cmd == nil {
		return
	}
	terminate(p.cmd, p.done, 30*time.Second)
	p.cmd = nil
}

// TestTemporalDown stops Temporal while issuer webhooks keep arriving: the API must record and
// acknowledge every event (the ledger keeps it; nothing waits at the issuer), and once Temporal
// is back every event must reach its agent's workflow exactly once, through the API's
// redelivery loop.
func TestTemporalDown(t *testing.T) {
	port := freePort(t)
	tp := startTemporalProcess(t, t.TempDir()+"/temporal", port)
	h := newHarness(t, harnessOptions{temporal: config.Temporal{Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Namespace: "default"}, redelivery: true})
	h.startWorkerProcess()
	ids := agentIDs("down", 4)
	h.startAgents(ids, func(id string) workflows.Policy {
		return policy(id, "1000", func(p *workflows.Policy) { p.RotateCron = workflows.RotateOff })
	})
	cards := h.currentCards(ids)
	// The outage is the webhooks', not the provisioning's: every workflow holds its card first
	// (the store has a card before IssueCard's completion reaches the server).
	for _, id := range ids {
		h.eventually(2*time.Minute, "workflow of "+id+" holds its card", func() error {
			st, err := h.state(id)
			if err != nil {
				return err
			}
			if st.Card == nil || st.Card.ID != cards[id] {
				return fmt.Errorf("card %+v, want %s", st.Card, cards[id])
			}
			return nil
		})
	}

	t.Log("stopping Temporal")
	tp.stop()
	want := map[string]int64{}

	// A webhook posted while Temporal is down is recorded and acknowledged.
	direct := approvedEvent("evt_down_direct", cards[ids[0]], 125, time.Now())
	code, body := h.postWebhook("evt_down_direct", direct, time.Now(), h.whKey)
	if code != http.StatusOK {
		t.Fatalf("webhook while Temporal is down: %d %s, want 200 (recorded)", code, body)
	}
	want[ids[0]] += 125
	if ev, err := h.st.GetEvent(h.ctx, "sim", "evt_down_direct"); err != nil {
		t.Errorf("event acknowledged while Temporal was down is not in the ledger: %v", err)
	} else if ev.SignalledAt.Valid {
		t.Errorf("event marked signalled while Temporal was down")
	}
	// Purchases at the issuer while Temporal is down: their webhooks are acknowledged too.
	for i, id := range ids {
		for k := range 3 {
			amt := int64(100 + 10*i + k)
			if err := h.simDo(http.MethodPost, "/v1/simulate/authorizations", map[string]any{
				"card_id": cards[id], "amount_minor": amt, "merchant": "while-down"}, nil); err != nil {
				t.Fatal(err)
			}
			want[id] += amt
		}
	}
	h.eventually(time.Minute, "every webhook acknowledged while Temporal is down", func() error {
		if st := h.sim.Stats(); st.WebhooksPending != 0 {
			return fmt.Errorf("%d webhooks pending at the issuer", st.WebhooksPending)
		}
		return nil
	})
	if n, err := countRows(h, `SELECT count(*) FROM ledger_events WHERE signalled_at IS NULL AND orphaned = ?`, false); err != nil {
		t.Fatal(err)
	} else if n < 1+3*len(ids) {
		t.Errorf("%d events waiting in the ledger while Temporal is down, want at least %d", n, 1+3*len(ids))
	}

	t.Log("starting Temporal again")
	tp.start()
	h.eventually(3*time.Minute, "every event delivered after Temporal returned", func() error {
		if st := h.sim.Stats(); st.WebhooksPending != 0 {
			return fmt.Errorf("%d webhooks still pending at the issuer", st.WebhooksPending)
		}
		n, err := countRows(h, `SELECT count(*) FROM ledger_events WHERE signalled_at IS NULL AND orphaned = ?`, false)
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d ledger events not yet signalled", n)
		}
		for _, id := range ids {
			st, err := h.state(id)
			if err != nil {
				return err
			}
			if st.Budget.SpentTodayUSD.Minor() != want[id] {
				return fmt.Errorf("agent %s spent today %s, want %s", id, st.Budget.SpentTodayUSD, money.Amount(want[id]))
			}
		}
		return nil
	})
}
