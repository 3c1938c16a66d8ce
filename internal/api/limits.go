package api

import (
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/cardwarden/cardwarden/workflows"
)

// maxEcho bounds how much of a request's own path or method an error message repeats.
const maxEcho = 120

// clip makes request-controlled text safe to repeat in an answer or a log line: valid UTF-8,
// no control characters, at most maxEcho bytes.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) <= maxEcho {
		return s
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// agentPath answers 404 for a path whose {id} cannot be an agent id, before the handler (and
// so before authentication, the store or Temporal) sees it: path parameters are checked
// before any I/O, log line, metric label or row is made from them. The id is not repeated.
func agentPath(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !workflows.ValidAgentID(r.PathValue("id")) {
			writeError(w, http.StatusNotFound, "agent_not_found", "no such agent (agent ids are "+workflows.AgentIDRule+")", "")
			return
		}
		h(w, r)
	}
}
