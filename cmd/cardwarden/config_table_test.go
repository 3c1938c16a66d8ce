package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

// The README's Configuration table lists every setting of the long-running processes, setup
// and the management CLI: each flag that has an environment fallback appears by its flag or
// its variable, and nothing the table names is a flag or variable the binary does not have.
func TestConfigTableListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(b)
	start := strings.Index(readme, "\n## Configuration\n")
	require.GreaterOrEqual(t, start, 0, "README has a Configuration section")
	end := strings.Index(readme[start+1:], "\n## ")
	section := readme[start : start+1+end]
	var rows []string
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "| ") {
			rows = append(rows, line)
		}
	}
	table := strings.Join(rows, "\n")
	families := regexp.MustCompile("`([A-Z0-9_]+_)\\*`").FindAllStringSubmatch(table, -1) // CARDWARDEN_STRIPE_*
	inTable := func(s string) bool {
		for _, f := range families {
			if strings.HasPrefix(s, f[1]) {
				return true
			}
		}
		return strings.Contains(table, "`"+s+"`")
	}

	root := newRootCmd()
	envRe := regexp.MustCompile(`env ([A-Z0-9_]+)`)
	flags := map[string]bool{}
	for _, path := range [][]string{{"worker"}, {"serve"}, {"setup"}, {"agent", "list"}} {
		cmd, _, err := root.Find(path)
		require.NoError(t, err, path)
		var all []*pflag.Flag
		cmd.Flags().VisitAll(func(f *pflag.Flag) { all = append(all, f) })
		cmd.InheritedFlags().VisitAll(func(f *pflag.Flag) { all = append(all, f) })
		for _, f := range all {
			flags["--"+f.Name] = true
			m := envRe.FindStringSubmatch(f.Usage)
			if m == nil {
				continue // not a setting (--json, --help, …)
			}
			require.True(t, inTable("--"+f.Name) || inTable(m[1]),
				"cardwarden %s: --%s (env %s) is missing from the README's Configuration table", strings.Join(path, " "), f.Name, m[1])
		}
	}

	// Every flag the table names exists on some command.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { flags["--"+f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { flags["--"+f.Name] = true })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, m := range regexp.MustCompile("`(--[a-z0-9-]+)`").FindAllStringSubmatch(table, -1) {
		require.True(t, flags[m[1]], "the Configuration table names %s, which no command has", m[1])
	}
	known := envNamesKnown(root)
	for _, m := range regexp.MustCompile("`((?:CARDWARDEN|TEMPORAL)_[A-Z0-9_]+)`").FindAllStringSubmatch(table, -1) {
		if strings.HasSuffix(m[1], "_") {
			continue // a family, CARDWARDEN_STRIPE_*
		}
		require.True(t, known[m[1]] || sourceNames(t, m[1]), "the Configuration table names %s, which cardwarden does not read", m[1])
	}
}

// sourceNames says whether a non-test Go file of the module has name as a string literal (a
// variable read without a flag, such as CARDWARDEN_VAULT_KEY).
func sourceNames(t *testing.T, name string) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || found {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		found = strings.Contains(string(b), `"`+name+`"`)
		return nil
	})
	require.NoError(t, err)
	return found
}

// The README's Commands table names every command of the binary.
func TestCommandsTableListsEveryCommand(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(b)
	start := strings.Index(readme, "\n## Commands\n")
	require.GreaterOrEqual(t, start, 0, "README has a Commands section")
	end := strings.Index(readme[start+1:], "\n## ")
	section := readme[start : start+1+end]
	for _, c := range newRootCmd().Commands() {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		require.Contains(t, section, "`cardwarden "+c.Name(), "the README's Commands table lists cardwarden %s", c.Name())
	}
}
