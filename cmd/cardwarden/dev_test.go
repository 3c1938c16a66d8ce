package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func portOfAddr(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return p
}

// buildBinary compiles cardwarden once per test run into a temp dir.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cardwarden")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Run(), "build cardwarden")
	return bin
}

// devProcess is a running `cardwarden dev`.
type devProcess struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	output strings.Builder
	ready  chan struct{}
	exited chan error
}

func (p *devProcess) out() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

func startDev(t *testing.T, bin string, args ...string) *devProcess {
	t.Helper()
	p := &devProcess{ready: make(chan struct{}), exited: make(chan error, 1)}
	p.cmd = exec.Command(bin, append([]string{"dev"}, args...)...)
	p.cmd.Env = append(os.Environ(), "CARDWARDEN_VAULT_KEY=", "CARDWARDEN_DATABASE_URL=", "CARDWARDEN_ISSUER_SIM_URL=")
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	require.NoError(t, p.cmd.Start())
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			p.mu.Lock()
			p.output.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.Contains(sc.Text(), "cardwarden dev is ready") {
				once.Do(func() { close(p.ready) })
			}
		}
	}()
	// Report the exit only after every line of output has been read, so failures show it.
	go func() { err := p.cmd.Wait(); pw.Close(); <-scanned; p.exited <- err }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	select {
	case <-p.ready:
	case err := <-p.exited:
		t.Fatalf("cardwarden dev exited before ready: %v\n%s", err, p.out())
	case <-time.After(3 * time.Minute):
		t.Fatalf("cardwarden dev not ready after 3 minutes:\n%s", p.out())
	}
	return p
}

// stop sends Ctrl-C and waits for a clean exit.
func (p *devProcess) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-p.exited:
		require.NoError(t, err, "cardwarden dev exits cleanly on Ctrl-C:\n%s", p.out())
	case <-time.After(30 * time.Second):
		t.Fatalf("cardwarden dev did not stop after Ctrl-C:\n%s", p.out())
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err, url)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func pollerCount(ctx context.Context, c client.Client, queue string, kind enumspb.TaskQueueType) (int, error) {
	resp, err := c.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
		Namespace: "default", TaskQueue: &taskqueuepb.TaskQueue{Name: queue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL}, TaskQueueType: kind,
	})
	if err != nil {
		return 0, err
	}
	return len(resp.Pollers), nil
}

// `cardwarden dev` brings up Temporal, the Web UI, the API and the simulator, its worker polls
// all three task queues, Ctrl-C stops it, and a second start finds the same state.
func TestDevRunsTheWholeStackAndKeepsState(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	temporalAddr, uiAddr, apiAddr, simAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	args := []string{"--dir", dir, "--temporal-port", portOfAddr(t, temporalAddr), "--ui-port", portOfAddr(t, uiAddr),
		"--listen", apiAddr, "--sim-listen", simAddr}

	p := startDev(t, bin, args...)
	require.Contains(t, p.out(), temporalAddr)
	require.Equal(t, http.StatusOK, httpStatus(t, "http://"+uiAddr+"/"), "Temporal Web UI")
	require.Equal(t, http.StatusOK, httpStatus(t, "http://"+apiAddr+"/healthz"))
	require.Equal(t, http.StatusOK, httpStatus(t, "http://"+apiAddr+"/readyz"))
	require.Equal(t, http.StatusOK, httpStatus(t, "http://"+simAddr+"/healthz"), "issuer simulator")

	c, err := client.Dial(client.Options{HostPort: temporalAddr})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, q := range []struct {
		name string
		kind enumspb.TaskQueueType
	}{
		{"cardwarden", enumspb.TASK_QUEUE_TYPE_WORKFLOW},
		{"cardwarden", enumspb.TASK_QUEUE_TYPE_ACTIVITY},
		{"cardwarden-issuer", enumspb.TASK_QUEUE_TYPE_ACTIVITY},
		{"cardwarden-issuer-urgent", enumspb.TASK_QUEUE_TYPE_ACTIVITY},
	} {
		require.Eventually(t, func() bool {
			n, err := pollerCount(ctx, c, q.name, q.kind)
			return err == nil && n > 0
		}, time.Minute, 200*time.Millisecond, "a worker polls %s (%s)", q.name, q.kind)
	}

	// A workflow on a queue nobody polls stays open across the restart: proof the state is on disk.
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "restart-probe", TaskQueue: "nobody-polls"}, "Probe")
	require.NoError(t, err)
	c.Close()
	p.stop(t)
	require.Contains(t, p.out(), "shutting down")

	// The same ports are free again and a second start finds the workflow.
	p = startDev(t, bin, args...)
	c2, err := client.Dial(client.Options{HostPort: temporalAddr})
	require.NoError(t, err)
	defer c2.Close()
	desc, err := c2.DescribeWorkflowExecution(ctx, "restart-probe", "")
	require.NoError(t, err)
	require.Equal(t, run.GetRunID(), desc.WorkflowExecutionInfo.Execution.RunId)
	p.stop(t)
}

// A port in use is reported with the port and the flag that changes it.
func TestDevPortInUseNamesTheFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := buildBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	busy := l.Addr().String()
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--listen", busy}, "--listen"},
		{[]string{"--listen", freeAddr(t), "--sim-listen", busy}, "--sim-listen"},
		{[]string{"--listen", freeAddr(t), "--sim-listen", freeAddr(t), "--temporal-port", portOfAddr(t, busy)}, "--temporal-port"},
	} {
		cmd := exec.Command(bin, append([]string{"dev", "--dir", t.TempDir(), "--headless"}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		require.Error(t, err, "%s", out)
		require.Contains(t, string(out), portOfAddr(t, busy), "%s", out)
		require.Contains(t, string(out), tc.flag, "%s", out)
	}
}
