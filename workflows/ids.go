package workflows

import (
	"fmt"
	"regexp"
)

var (
	agentIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	issuerPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

// AgentIDRule says what an agent id can be, for messages.
const AgentIDRule = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

// ValidAgentID reports whether id can be an agent id (AgentIDRule). The edges check ids with
// it before any lookup, log line or label is made from one.
func ValidAgentID(id string) bool { return agentIDPattern.MatchString(id) }

// CheckAgentID is ValidAgentID with the reason.
func CheckAgentID(id string) error {
	if !ValidAgentID(id) {
		return fmt.Errorf("%q must be %s", id, AgentIDRule)
	}
	return nil
}

// ValidIssuerName reports whether name can be an issuer adapter's name.
func ValidIssuerName(name string) bool { return issuerPattern.MatchString(name) }
