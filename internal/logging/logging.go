// Package logging sets up cardwarden's structured logs: log/slog everywhere, JSON in
// production and text in `dev`, every handler wrapped in a redaction guard (redact.go) so that
// a card number or CVV can never reach a log line, the agent id carried from the context
// (WithAgentID), and the Temporal SDK's logger adapted to the same slog.Logger.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	tlog "go.temporal.io/sdk/log"
)

// Formats accepted by New.
const (
	FormatJSON = "json"
	FormatText = "text"
)

// AgentIDKey is the attribute every line about an agent carries.
const AgentIDKey = "agent_id"

// Options configure New. The zero value is JSON at info level.
type Options struct {
	// Format is FormatJSON (production) or FormatText (people, `cardwarden dev`).
	Format string
	// Level is the minimum level written; a *slog.LevelVar makes it changeable at run time.
	Level slog.Leveler
	// AddSource adds the file:line of the log call.
	AddSource bool
}

// New returns a logger writing to w in the chosen format, behind the redaction guard and with
// the context's agent id added to every record.
func New(w io.Writer, o Options) (*slog.Logger, error) {
	h, err := NewHandler(w, o)
	if err != nil {
		return nil, err
	}
	return slog.New(h), nil
}

// NewHandler is New's handler, for callers that wrap it further.
func NewHandler(w io.Writer, o Options) (slog.Handler, error) {
	level := o.Level
	if level == nil {
		level = slog.LevelInfo
	}
	ho := &slog.HandlerOptions{Level: level, AddSource: o.AddSource}
	var h slog.Handler
	switch strings.ToLower(o.Format) {
	case "", FormatJSON:
		h = slog.NewJSONHandler(w, ho)
	case FormatText:
		h = slog.NewTextHandler(w, ho)
	default:
		return nil, fmt.Errorf("log format %q: want %s or %s", o.Format, FormatJSON, FormatText)
	}
	// Context attributes are added before redaction so they are scrubbed too.
	return Redact(contextHandler{Handler: h}), nil
}

// ParseLevel turns "debug", "info", "warn" or "error" into a level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// Temporal adapts l to the Temporal SDK's logger (client.Options.Logger), so the SDK's own
// lines (worker start, task failures, replays) come out in the same format, through the same
// redaction guard.
func Temporal(l *slog.Logger) tlog.Logger {
	return tlog.NewStructuredLogger(l)
}

type ctxKey struct{}

// WithAgentID returns a context whose log records (written with the *Context methods, e.g.
// logger.InfoContext(ctx, …)) carry agent_id, so an HTTP handler or activity sets it once.
func WithAgentID(ctx context.Context, agentID string) context.Context {
	if agentID == "" {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, agentID)
}

// AgentID returns the agent id WithAgentID put in ctx.
func AgentID(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	s, _ := ctx.Value(ctxKey{}).(string)
	return s
}

// contextHandler adds the context's agent id unless the record or the logger already names
// one. (A handler inside a group would add it inside the group; that is still findable.)
type contextHandler struct {
	slog.Handler
	hasAgent bool // a WithAttrs above us set agent_id
}

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := AgentID(ctx); id != "" && !h.hasAgent && !hasAttr(r, AgentIDKey) {
		r = r.Clone()
		r.AddAttrs(slog.String(AgentIDKey, id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	has := h.hasAgent
	for _, a := range as {
		has = has || a.Key == AgentIDKey
	}
	return contextHandler{Handler: h.Handler.WithAttrs(as), hasAgent: has}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{Handler: h.Handler.WithGroup(name), hasAgent: h.hasAgent}
}

func hasAttr(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}
