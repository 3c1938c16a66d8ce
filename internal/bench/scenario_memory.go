package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/internal/config"
	"github.com/cardwarden/cardwarden/workflows"
)

const (
	// provisionLimit bounds the wait for the scenario's agents, and for the floor's workflows
	// started beside them.
	provisionLimit   = 20 * time.Minute
	floorMemoryQueue = "bench-floor-memory"
	floorWFIdle      = "BenchFloorIdle"
)

// floorIdleWorkflow is the memory floor: an entity that waits for a signal or a daily timer,
// like an idle agent, and holds nothing.
func floorIdleWorkflow(ctx workflow.Context) error {
	ch := workflow.GetSignalChannel(ctx, floorSignalName)
	for {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
		sel.AddFuture(workflow.NewTimer(ctx, 24*time.Hour), func(workflow.Future) {})
		sel.Select(ctx)
	}
}

// RunFloorWorker runs the memory scenario's floor worker until ctx is done: a process that
// polls one task queue and runs only floorIdleWorkflow, to be measured beside `cardwarden
// worker`. `cardwarden bench floor-worker` calls it in a child process.
func RunFloorWorker(ctx context.Context, t config.Temporal) error {
	c, err := t.Dial(ctx, nil, 30*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	w := sdkworker.New(c, floorMemoryQueue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(floorIdleWorkflow, workflow.RegisterOptions{Name: floorWFIdle})
	if err := w.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	w.Stop()
	return nil
}

// child is a worker process whose memory is measured.
type child struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
}

func startChild(ctx context.Context, logPath string, env []string, name string, args ...string) (*child, error) {
	f, err := os.Create(logPath) // #nosec G304 -- a log file under the operator's --out directory
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...) // #nosec G204 -- the benchmark's own worker binary (os.Executable or --worker-command) with fixed flags
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	c := &child{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(c.done) }()
	go func() {
		select {
		case <-ctx.Done():
			c.stop()
		case <-c.done:
		}
	}()
	return c, nil
}

// kill ends the child at once: once measured, its shutdown is of no interest.
func (c *child) kill() {
	select {
	case <-c.done:
	default:
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
	}
}

// procStatus reads VmRSS and VmHWM (kB) of a process.
func procStatus(pid int) (rssKB, hwmKB int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rssKB = v
		case "VmHWM:":
			hwmKB = v
		}
	}
	if rssKB == 0 {
		return 0, 0, errors.New("no VmRSS in /proc status")
	}
	return rssKB, hwmKB, nil
}

var gcLine = regexp.MustCompile(`^gc \d+ .* (\d+)->(\d+)->(\d+) MB`)

// liveHeapMB is the live heap after the last GC the child reported (GODEBUG=gctrace=1).
func liveHeapMB(logPath string) float64 {
	f, err := os.Open(logPath) // #nosec G304 -- the child log this benchmark wrote itself
	if err != nil {
		return 0
	}
	defer f.Close()
	last := 0.0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := gcLine.FindStringSubmatch(sc.Text()); m != nil {
			last, _ = strconv.ParseFloat(m[3], 64)
		}
	}
	return last
}

// settledRSS waits for the child's RSS to stop falling (idle workers return freed memory to
// the OS over a few seconds) and returns it.
func settledRSS(ctx context.Context, pid int, wait time.Duration) (int64, int64, error) {
	var rss, hwm int64
	deadline := time.Now().Add(wait)
	for {
		r, h, err := procStatus(pid)
		if err != nil {
			return 0, 0, err
		}
		rss, hwm = r, h
		if time.Now().After(deadline) {
			return rss, hwm, nil
		}
		select {
		case <-ctx.Done():
			return rss, hwm, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// runMemory: resident memory of `cardwarden worker`, run as its own process, holding N idle
// agents, per agent; the floor is a worker process holding N idle minimal entity workflows.
func runMemory(ctx context.Context, o Options, r *Result) error {
	r.Title = "worker memory: RSS per idle agent (worker in its own process)"
	// 3,000 agents give the per-agent figure 10,000 gave (52.3 KB against 52.1; 5,000: 52.1 and
	// 53.1, 2026-12-01) in a third of the time, which kept `make bench` over 10 minutes. The
	// floor's workflows are fewer but enough that a megabyte of RSS noise is 3% of its growth.
	n := o.size(3000, 300)
	floorN := min(n, 1000)
	const warm = 20
	r.Params["agents"], r.Params["floor_workflows"] = n, floorN
	if o.WorkerCommand == "" {
		r.Skipped = "no cardwarden binary to run as the worker process (Options.WorkerCommand)"
		return nil
	}
	// The worker is a child process (`cardwarden worker`) and so is the floor's worker; this
	// process runs Temporal, the simulator and the database, and starts the agents.
	s, err := newStack(ctx, o, stackConfig{name: "memory", noWebhooks: true})
	if err != nil {
		return err
	}
	defer s.close()
	policy := func(id string) workflows.Policy { return basePolicy(id, "25") }

	env := []string{"CARDWARDEN_VAULT_KEY=" + s.vaultKey, "GODEBUG=gctrace=1"}
	temporalArgs := []string{"--address", s.temporal.Address, "--namespace", s.temporal.Namespace}
	cwLog := filepath.Join(o.OutDir, "memory-worker.log")
	worker, err := startChild(ctx, cwLog, env, o.WorkerCommand, append([]string{"worker", "--database-url", s.dbURL,
		"--issuer-url", s.simURL, "--sim-api-key", simAPIKey, "--sim-webhook-secret", webhookSecret,
		"--health-listen", "", "--log-level", "warn"}, temporalArgs...)...)
	if err != nil {
		return err
	}
	defer worker.kill()
	flLog := filepath.Join(o.OutDir, "memory-floor-worker.log")
	floorWorker, err := startChild(ctx, flLog, []string{"GODEBUG=gctrace=1"}, o.WorkerCommand, append([]string{"bench", "floor-worker"}, temporalArgs...)...)
	if err != nil {
		return err
	}
	defer floorWorker.kill()

	// provision starts agents and waits until the worker process has issued their cards.
	provision := func(first, count int) error {
		startErr := make(chan error, 1)
		go func() { startErr <- s.startAgents(ctx, first, count, policy) }()
		if _, err := s.waitProvisionedFrom(ctx, first, count, provisionLimit); err != nil {
			return fmt.Errorf("worker process (log %s): %w", cwLog, err)
		}
		return <-startErr
	}
	startFloor := func(first, count int) error {
		return parallel(ctx, count, startConcurrency, func(ctx context.Context, i int) error {
			_, err := s.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("bench-floor-idle-%s-%06d", s.prefix, first+i), TaskQueue: floorMemoryQueue}, floorWFIdle)
			return err
		})
	}
	// The floor has no side effect to wait for: its workflows are idle once their first task
	// completed (a history of 5 events: started, task scheduled, started, completed, timer).
	// Tasks run in about the order the workflows started, so the last 20 and a 1% sample
	// stand for all of them.
	floorIdle := func(first, count int) error {
		var sample []int
		for i := 0; i < count; i++ {
			if i >= count-20 || i%100 == 0 {
				sample = append(sample, i)
			}
		}
		return parallel(ctx, len(sample), startConcurrency, func(ctx context.Context, k int) error {
			id := fmt.Sprintf("bench-floor-idle-%s-%06d", s.prefix, first+sample[k])
			// As long as the agents may take: the floor's first tasks queue at the same server
			// while they are provisioned (377 s for 10,000 on PostgreSQL with 2 cores).
			return waitFor(ctx, provisionLimit, 50*time.Millisecond, func() (bool, error) {
				d, err := s.tc.DescribeWorkflowExecution(ctx, id, "")
				if err != nil {
					return false, err
				}
				return d.GetWorkflowExecutionInfo().GetHistoryLength() >= 5, nil
			})
		})
	}

	settle := 5 * time.Second
	if o.Quick {
		settle = 3 * time.Second
	}
	// The floor's worker and cardwarden's are separate processes, so the floor is measured
	// while cardwarden's agents are being provisioned: each process's resident memory is its
	// own, whatever the shared server is doing, and the scenario takes the longer of the two.
	type floorMem struct {
		base, rss, hwm int64
		heap0, heap    float64
		err            error
	}
	floorDone := make(chan floorMem, 1)
	go func() {
		var fm floorMem
		defer func() { floorDone <- fm }()
		if fm.err = startFloor(0, warm); fm.err != nil {
			return
		}
		if fm.err = floorIdle(0, warm); fm.err != nil {
			fm.err = fmt.Errorf("floor worker process (log %s): %w", flLog, fm.err)
			return
		}
		if fm.base, _, fm.err = settledRSS(ctx, floorWorker.cmd.Process.Pid, settle); fm.err != nil {
			return
		}
		fm.heap0 = liveHeapMB(flLog)
		f0 := time.Now()
		if fm.err = startFloor(warm, floorN); fm.err != nil {
			return
		}
		if fm.err = floorIdle(warm, floorN); fm.err != nil {
			return
		}
		if fm.rss, fm.hwm, fm.err = settledRSS(ctx, floorWorker.cmd.Process.Pid, settle); fm.err != nil {
			return
		}
		fm.heap = liveHeapMB(flLog)
		o.progress("memory: floor worker %d → %d MB with %d idle workflows (%.0fs)", fm.base/1024, fm.rss/1024, floorN, time.Since(f0).Seconds())
	}()

	if err := provision(0, warm); err != nil {
		return err
	}
	cwBase, _, err := settledRSS(ctx, worker.cmd.Process.Pid, settle)
	if err != nil {
		return err
	}
	cwHeap0 := liveHeapMB(cwLog)
	o.progress("memory: baseline RSS of the worker %d MB; starting %d agents", cwBase/1024, n)
	l0 := time.Now()
	if err := provision(warm, n); err != nil {
		return err
	}
	o.progress("memory: %d agents provisioned by the worker process in %.0fs; letting it settle", n, time.Since(l0).Seconds())
	cwRSS, cwHWM, err := settledRSS(ctx, worker.cmd.Process.Pid, 2*settle)
	if err != nil {
		return err
	}
	cwHeap := liveHeapMB(cwLog)
	fm := <-floorDone
	if fm.err != nil {
		return fm.err
	}
	flBase, flRSS, flHWM, flHeap0, flHeap := fm.base, fm.rss, fm.hwm, fm.heap0, fm.heap

	cwPer := float64(cwRSS-cwBase) / float64(n)
	flPer := float64(flRSS-flBase) / float64(floorN)
	r.metric("RSS per idle agent", "KB", cwPer).withFloor(flPer).target("cardwarden < 100 KB", cwPer < 100)
	r.metric("RSS per idle agent vs floor", "KB", cwPer).withFloor(flPer).target("ratio <= 1.3", cwPer <= 1.3*flPer)
	r.metric("RSS with all agents", "MB", float64(cwRSS)/1024).withFloor(float64(flRSS) / 1024)
	r.metric("RSS growth", "MB", float64(cwRSS-cwBase)/1024).withFloor(float64(flRSS-flBase) / 1024)
	r.metric("RSS baseline", "MB", float64(cwBase)/1024).withFloor(float64(flBase) / 1024)
	r.metric("peak RSS (VmHWM)", "MB", float64(cwHWM)/1024).withFloor(float64(flHWM) / 1024)
	if cwHeap > 0 && flHeap > 0 {
		r.metric("live heap per agent (gctrace)", "KB", (cwHeap-cwHeap0)*1024/float64(n)).withFloor((flHeap - flHeap0) * 1024 / float64(floorN))
	}
	r.note("per agent = (RSS with all agents − RSS with %d warm-up agents) ÷ %d, read from /proc/<pid>/status of `cardwarden worker` run as a child process that provisioned every agent; the SDK's workflow cache (10,000 by default) keeps idle agents in memory", warm, n)
	r.note("floor: a child worker process running only an idle entity workflow (a signal channel and a 24h timer), %d of them; its per-workflow figure is its growth ÷ %d", floorN, floorN)
	r.note("live heap: the last GODEBUG=gctrace=1 line of each child (MB granularity)")
	r.chart = func(r *Result) string {
		return barChart("Worker memory", fmt.Sprintf("RSS of the worker process: cardwarden with %d idle agents, floor with %d idle workflows", n, floorN), "MB",
			[]string{"baseline", "with all agents", "peak"}, []string{"cardwarden worker", "floor worker"},
			[][]float64{{float64(cwBase) / 1024, float64(cwRSS) / 1024, float64(cwHWM) / 1024}, {float64(flBase) / 1024, float64(flRSS) / 1024, float64(flHWM) / 1024}})
	}
	return nil
}
