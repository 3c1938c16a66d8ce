package devstack_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/internal/devstack"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The embedded server keeps workflows and search attributes across a restart on the same
// directory, and serves the Web UI.
func TestFileBackedServerSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := devstack.Config{Dir: dir, Port: freePort(t), UIPort: freePort(t)}

	st, err := devstack.Start(cfg)
	require.NoError(t, err)
	c, err := client.Dial(client.Options{HostPort: st.Address()})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	sas, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	require.NoError(t, err)
	for _, name := range []string{"AgentId", "CardStatus", "Issuer"} {
		require.Contains(t, sas.CustomAttributes, name)
	}

	// No worker polls this queue: the workflow just stays running, which is what we check for.
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "agent/restart-check", TaskQueue: "nobody-polls"}, "AgentCard", map[string]any{"agent_id": "restart-check"})
	require.NoError(t, err)

	resp, err := http.Get(st.UIURL())
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, strings.ToLower(string(body)), "<html")

	c.Close()
	st.Stop()

	st, err = devstack.Start(cfg)
	require.NoError(t, err)
	defer st.Stop()
	c, err = client.Dial(client.Options{HostPort: st.Address()})
	require.NoError(t, err)
	defer c.Close()
	desc, err := c.DescribeWorkflowExecution(ctx, "agent/restart-check", "")
	require.NoError(t, err)
	require.Equal(t, run.GetRunID(), desc.WorkflowExecutionInfo.Execution.RunId)
}

func TestPortInUseNamesThePort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = devstack.Start(devstack.Config{Dir: t.TempDir(), Port: port})
	var pe *devstack.PortInUseError
	require.True(t, errors.As(err, &pe), "got %v", err)
	require.Equal(t, port, pe.Port)
}
