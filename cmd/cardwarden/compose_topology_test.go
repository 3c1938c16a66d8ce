package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	temporalconfig "go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"

	"github.com/cardwarden/cardwarden/deploy/topology"
)

// placeholder is a {name} in a topology argument.
var placeholder = regexp.MustCompile(`\{[a-z_]+\}`)

// quotedPlaceholder is a placeholder after regexp.QuoteMeta.
var quotedPlaceholder = regexp.MustCompile(`\\\{[a-z_]+\\\}`)

// matchArgs says whether compose's command is the topology's arguments with every placeholder
// filled (by anything non-empty), and returns what each placeholder was filled with.
func matchArgs(t *testing.T, service string, want, got []string) map[string]string {
	t.Helper()
	require.Len(t, got, len(want), "%s: command %v, topology %v", service, got, want)
	values := map[string]string{}
	for i, w := range want {
		names := placeholder.FindAllString(w, -1)
		// QuoteMeta escapes the placeholders' braces: each escaped placeholder becomes a group.
		re := quotedPlaceholder.ReplaceAllString("^"+regexp.QuoteMeta(w)+"$", "(.+)")
		m := regexp.MustCompile(re).FindStringSubmatch(got[i])
		require.NotNil(t, m, "%s: argument %d is %q, the topology's is %q", service, i, got[i], w)
		for j, n := range names {
			values[strings.Trim(n, "{}")] = m[j+1]
		}
	}
	return values
}

// TestComposeMatchesTopology checks docker-compose.yml against deploy/topology, the topology
// that the resilience test TestProductionTopology runs as processes: every cardwarden service
// runs the topology's command and flags and gets exactly its environment, one-shot processes run
// to completion before the others start, the worker runs as many replicas, Temporal's schema is
// set up with the topology's SQL tool steps, the server finds its dynamic configuration, and no
// setup failure is hidden.
func TestComposeMatchesTopology(t *testing.T) {
	f := loadCompose(t)

	cardwardenServices := []string{}
	for name, s := range f.Services {
		if s.Image == "cardwarden:latest" {
			cardwardenServices = append(cardwardenServices, name)
		}
	}
	var topoServices []string
	filled := map[string]map[string]string{}
	for _, p := range topology.Processes() {
		topoServices = append(topoServices, p.Service)
		s, ok := f.Services[p.Service]
		require.True(t, ok, "compose has no service %s", p.Service)
		require.Equal(t, "cardwarden:latest", s.Image, p.Service)
		filled[p.Service] = matchArgs(t, p.Service, p.Args, s.Command)

		var env []string
		for k := range s.Environment {
			env = append(env, k)
		}
		require.ElementsMatch(t, p.Env, env, "%s: environment, topology vs compose", p.Service)

		replicas := max(s.Deploy.Replicas, 1)
		require.Equal(t, p.Replicas, replicas, "%s: replicas", p.Service)
		if p.OneShot {
			require.Equal(t, "no", s.Restart, "%s runs once", p.Service)
		}
	}
	require.ElementsMatch(t, topoServices, cardwardenServices, "cardwarden services: topology vs compose")

	// Long-running processes that talk to Temporal or the database start after every one-shot
	// process has succeeded.
	for _, p := range topology.Processes() {
		if p.OneShot || !slices.Contains(p.Env, "TEMPORAL_ADDRESS") {
			continue
		}
		for _, q := range topology.Processes() {
			if q.OneShot {
				require.Equal(t, "service_completed_successfully", f.Services[p.Service].DependsOn[q.Service].Condition,
					"%s starts after %s succeeded", p.Service, q.Service)
			}
		}
	}

	// Placeholders: serve's address is where the simulator's webhooks go; the worker's health
	// listener is reachable from outside its container (probes, Prometheus) and probed.
	serveListen := filled["cardwarden-serve"]["listen"]
	require.True(t, strings.HasPrefix(serveListen, "0.0.0.0:"), "serve listens on all interfaces: %s", serveListen)
	require.Equal(t, "http://cardwarden-serve:"+strings.TrimPrefix(serveListen, "0.0.0.0:"), filled["issuer-sim"]["serve_url"])
	health := filled["cardwarden-worker"]["health"]
	require.True(t, strings.HasPrefix(health, "0.0.0.0:"), "worker health/metrics listen on all interfaces: %s", health)
	require.Contains(t, strings.Join(f.Services["cardwarden-worker"].Healthcheck.Test, " "), "localhost:"+strings.TrimPrefix(health, "0.0.0.0:")+"/healthz")

	// Links in alerts and the dashboard.
	for _, svc := range []string{"cardwarden-serve", "cardwarden-worker"} {
		require.NotEmpty(t, f.Services[svc].Environment["CARDWARDEN_PUBLIC_URL"], svc)
	}
	require.Len(t, f.Services["temporal-ui"].Ports, 1)
	uiPort, _, _ := strings.Cut(f.Services["temporal-ui"].Ports[0], ":") // host:container
	require.Equal(t, "http://localhost:"+uiPort, f.Services["cardwarden-serve"].Environment["CARDWARDEN_TEMPORAL_UI_URL"])

	// No failure hidden: no command ends in "|| true" or swallows an exit code.
	for name, s := range f.Services {
		cmd := strings.Join(s.Command, " ")
		require.NotRegexp(t, `\|\|\s*(true|:)`, cmd, "%s hides failures", name)
	}

	// Temporal's schema: the topology's SQL tool steps, for the databases the server uses, with
	// the server's plugin; each step stops the job when it fails.
	schema, temporal := f.Services["temporal-schema"], f.Services["temporal"]
	require.Equal(t, topology.TemporalSQLPlugin, schema.Environment["SQL_PLUGIN"])
	require.Equal(t, topology.TemporalSQLPlugin, temporal.Environment["DB"])
	script := strings.Join(schema.Command, " ")
	require.True(t, strings.HasPrefix(strings.TrimSpace(script), "set -e;"), "temporal-schema stops at the first failure: %s", script)
	var steps []string
	for _, step := range topology.TemporalSchemaSteps() {
		args := topology.Fill(step, map[string]string{"db": temporal.Environment["DBNAME"], "visibility_db": temporal.Environment["VISIBILITY_DBNAME"]})
		steps = append(steps, "temporal-sql-tool "+strings.Join(args, " "))
	}
	require.Equal(t, "set -e; "+strings.Join(steps, "; "), strings.Join(strings.Fields(script), " "))
	require.Equal(t, "service_completed_successfully", temporal.DependsOn["temporal-schema"].Condition)

	// Temporal's server, with compose's environment, renders its configuration (the server's
	// own embedded template) and finds its dynamic configuration file among the mounts.
	for k, v := range temporal.Environment {
		t.Setenv(k, v)
	}
	conf, err := temporalconfig.Load(temporalconfig.WithEmbedded())
	require.NoError(t, err)
	require.NotNil(t, conf.DynamicConfigClient)
	inContainer := conf.DynamicConfigClient.Filepath
	host := ""
	for _, v := range temporal.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == inContainer {
			host = parts[0]
		}
	}
	require.NotEmpty(t, host, "temporal mounts nothing at its dynamic config path %s (volumes %v)", inContainer, temporal.Volumes)
	hostPath := filepath.Join("../..", host)
	raw, err := os.ReadFile(hostPath)
	require.NoError(t, err)
	loaded := dynamicconfig.LoadYamlFile(raw)
	require.Empty(t, loaded.Errors, "dynamic config %s", host)
	require.Empty(t, loaded.Warnings, "dynamic config %s", host)
	done := make(chan any)
	defer close(done)
	_, err = dynamicconfig.NewFileBasedClient(&dynamicconfig.FileBasedClientConfig{Filepath: hostPath, PollInterval: time.Minute},
		log.NewNoopLogger(), done)
	require.NoError(t, err, "the server's dynamic config client reads %s", host)
}
