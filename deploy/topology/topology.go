// Package topology is cardwarden's production topology, written once: which processes run,
// with which cardwarden command, flags and environment. The production-topology test
// (test/resilience, TestProductionTopology) starts exactly these processes, and a test of
// docker-compose.yml (cmd/cardwarden, TestComposeMatchesTopology) checks that every compose
// service runs the same command with the same environment, so the two cannot drift.
//
// Arguments may hold placeholders in braces, filled in per deployment: {listen} (the address
// a server binds), {health} (the worker's health listener), {serve_url} (where serve is
// reached) and, for Temporal's SQL tool, {db}.
package topology

import "strings"

// Process is one kind of cardwarden process.
type Process struct {
	// Service is the process's name, as a docker compose service.
	Service string
	// Args are the cardwarden subcommand and its flags.
	Args []string
	// Env are the environment variables it is given (and no others).
	Env []string
	// Replicas is how many run (two workers show that nothing is kept in one's memory).
	Replicas int
	// OneShot processes run to completion before the others start.
	OneShot bool
}

// Environment variables, grouped by what needs them.
var (
	temporalEnv = []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"}
	databaseEnv = []string{"CARDWARDEN_DATABASE_URL"}
	simEnv      = []string{"CARDWARDEN_ISSUER_SIM_URL", "CARDWARDEN_SIM_API_KEY", "CARDWARDEN_SIM_WEBHOOK_SECRET"}
	logEnv      = []string{"CARDWARDEN_LOG_FORMAT"}
)

func join(groups ...[]string) []string {
	var out []string
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// Processes are the cardwarden processes of the topology, in start order. Temporal (a server
// on PostgreSQL, its schema set up by TemporalSchemaSteps) and PostgreSQL itself run beside
// them.
func Processes() []Process {
	return []Process{
		{Service: "setup", Args: []string{"setup"}, Env: join(temporalEnv, databaseEnv, logEnv), Replicas: 1, OneShot: true},
		{Service: "issuer-sim", Args: []string{"issuer-sim", "--listen", "{listen}", "--webhook-url", "{serve_url}/v1/webhooks/sim"},
			Env: []string{"CARDWARDEN_SIM_API_KEY", "CARDWARDEN_SIM_WEBHOOK_SECRET"}, Replicas: 1},
		{Service: "cardwarden-worker", Args: []string{"worker", "--issuer-rate-limit", "100", "--health-listen", "{health}"},
			Env: join(temporalEnv, databaseEnv, simEnv, []string{"CARDWARDEN_VAULT_KEY", "CARDWARDEN_PUBLIC_URL"}, logEnv), Replicas: 2},
		{Service: "cardwarden-serve", Args: []string{"serve", "--listen", "{listen}"},
			Env: join(temporalEnv, databaseEnv, simEnv, []string{"CARDWARDEN_VAULT_KEY", "CARDWARDEN_ADMIN_TOKEN", "CARDWARDEN_PUBLIC_URL",
				"CARDWARDEN_TEMPORAL_UI_URL"}, logEnv), Replicas: 1},
	}
}

// ProcessOf returns the process of the named service.
func ProcessOf(service string) (Process, bool) {
	for _, p := range Processes() {
		if p.Service == service {
			return p, true
		}
	}
	return Process{}, false
}

// TemporalSchemaSteps are the arguments of Temporal's SQL tool (temporal-sql-tool) that set
// up, or bring up to date, the schema of Temporal's two PostgreSQL databases, {db} and
// {visibility_db}: idempotent, so they run on every start. The schemas are the ones embedded
// in the server (go.temporal.io/server/schema).
func TemporalSchemaSteps() [][]string {
	return [][]string{
		{"--db", "{db}", "setup-schema", "-v", "0.0"},
		{"--db", "{db}", "update-schema", "--schema-name", "postgresql/v12/temporal"},
		{"--db", "{visibility_db}", "setup-schema", "-v", "0.0"},
		{"--db", "{visibility_db}", "update-schema", "--schema-name", "postgresql/v12/visibility"},
	}
}

// TemporalSQLPlugin is the SQL plugin of Temporal's PostgreSQL persistence.
const TemporalSQLPlugin = "postgres12"

// Fill replaces the placeholders of args with values (keys without braces).
func Fill(args []string, values map[string]string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		for k, v := range values {
			a = strings.ReplaceAll(a, "{"+k+"}", v)
		}
		out[i] = a
	}
	return out
}
