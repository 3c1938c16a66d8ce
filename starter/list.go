package starter

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cardwarden/cardwarden/workflows"
)

// ListOptions filter ListAgents. Every field is optional.
type ListOptions struct {
	// AgentID keeps one agent (all its runs with IncludeClosed).
	AgentID string
	// Status keeps agents whose CardStatus is this (active, frozen, revoked, retired).
	Status workflows.Status
	// Issuer keeps agents on this issuer.
	Issuer string
	// IncludeClosed lists agents whose workflow has ended (retired) too.
	IncludeClosed bool
	// Query is an extra visibility clause ANDed in, e.g. `StartTime > "2026-01-01T00:00:00Z"`.
	Query string
	// Limit caps the result; 0 means no cap.
	Limit int
}

// AgentSummary is one agent as Temporal's visibility store knows it: cheap to list for
// thousands of agents, no query to each workflow.
type AgentSummary struct {
	AgentID        string     `json:"agent_id"`
	Status         string     `json:"status"` // the CardStatus search attribute
	Issuer         string     `json:"issuer"`
	WorkflowID     string     `json:"workflow_id"`
	RunID          string     `json:"run_id"`
	WorkflowStatus string     `json:"workflow_status"` // Running, Completed, Failed, …
	StartedAt      time.Time  `json:"started_at"`
	ClosedAt       *time.Time `json:"closed_at,omitempty"`
}

// saConverter decodes search attributes, which the server stores with the default converter
// whatever the client's data converter is.
var saConverter = converter.GetDefaultDataConverter()

var knownStatuses = []workflows.Status{workflows.StatusActive, workflows.StatusFrozen, workflows.StatusRevoked, workflows.StatusRetired}

// AgentQuery builds the visibility query ListAgents runs, e.g.
// `WorkflowType = 'AgentCard' AND ExecutionStatus = 'Running' AND CardStatus = 'frozen'`.
// Values are checked against their patterns, so nothing a caller passes can change the query's
// meaning.
func AgentQuery(o ListOptions) (string, error) {
	var errs workflows.FieldErrors
	q := []string{fmt.Sprintf("WorkflowType = '%s'", workflows.WorkflowType)}
	if !o.IncludeClosed {
		q = append(q, "ExecutionStatus = 'Running'")
	}
	if o.AgentID != "" {
		if !workflows.ValidAgentID(o.AgentID) {
			errs = append(errs, workflows.FieldError{Field: "agent_id", Msg: fmt.Sprintf("%q is not an agent id", o.AgentID)})
		} else {
			q = append(q, fmt.Sprintf("%s = '%s'", workflows.SearchAttrAgentID, o.AgentID))
		}
	}
	if o.Status != "" {
		if !slices.Contains(knownStatuses, o.Status) {
			errs = append(errs, workflows.FieldError{Field: "status", Msg: fmt.Sprintf("%q is not one of active, frozen, revoked, retired", o.Status)})
		} else {
			q = append(q, fmt.Sprintf("%s = '%s'", workflows.SearchAttrCardStatus, o.Status))
		}
	}
	if o.Issuer != "" {
		if !workflows.ValidIssuerName(o.Issuer) {
			errs = append(errs, workflows.FieldError{Field: "issuer", Msg: fmt.Sprintf("%q is not an issuer name", o.Issuer)})
		} else {
			q = append(q, fmt.Sprintf("%s = '%s'", workflows.SearchAttrIssuer, o.Issuer))
		}
	}
	if extra := strings.TrimSpace(o.Query); extra != "" {
		q = append(q, "("+extra+")")
	}
	if len(errs) > 0 {
		return "", errs
	}
	return strings.Join(q, " AND "), nil
}

// ListAgents lists agents through Temporal's visibility store, one entry per agent (its latest
// run), ordered by agent id.
func (c *Client) ListAgents(ctx context.Context, o ListOptions) ([]AgentSummary, error) {
	query, err := AgentQuery(o)
	if err != nil {
		return nil, invalidRequest("list", "", err)
	}
	seen := map[string]bool{}
	var out []AgentSummary
	var token []byte
	for {
		resp, err := c.tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token, PageSize: 1000})
		if err != nil {
			return nil, c.classify(ctx, "list", "", err)
		}
		for _, ex := range resp.GetExecutions() {
			wid := ex.GetExecution().GetWorkflowId()
			// Continue-as-new and restarts leave several runs per agent; visibility returns the
			// newest first.
			if seen[wid] {
				continue
			}
			seen[wid] = true
			s := AgentSummary{
				AgentID:        c.keyword(ex.GetSearchAttributes(), workflows.SearchAttrAgentID),
				Status:         c.keyword(ex.GetSearchAttributes(), workflows.SearchAttrCardStatus),
				Issuer:         c.keyword(ex.GetSearchAttributes(), workflows.SearchAttrIssuer),
				WorkflowID:     wid,
				RunID:          ex.GetExecution().GetRunId(),
				WorkflowStatus: statusName(ex.GetStatus()),
				StartedAt:      ex.GetStartTime().AsTime().UTC(),
			}
			if s.AgentID == "" {
				s.AgentID = strings.TrimPrefix(wid, workflows.WorkflowIDPrefix)
			}
			if ex.GetCloseTime() != nil {
				t := ex.GetCloseTime().AsTime().UTC()
				s.ClosedAt = &t
			}
			out = append(out, s)
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 || (o.Limit > 0 && len(out) >= o.Limit) {
			break
		}
	}
	slices.SortFunc(out, func(a, b AgentSummary) int { return strings.Compare(a.AgentID, b.AgentID) })
	if o.Limit > 0 && len(out) > o.Limit {
		out = out[:o.Limit]
	}
	return out, nil
}

// keyword decodes a keyword search attribute. Search attributes are never encrypted by the
// payload codec (the server indexes them), which is why they hold no card data.
func (c *Client) keyword(sa *commonpb.SearchAttributes, name string) string {
	p := sa.GetIndexedFields()[name]
	if p == nil {
		return ""
	}
	var s string
	if err := saConverter.FromPayload(p, &s); err != nil {
		var list []string
		if err := saConverter.FromPayload(p, &list); err == nil && len(list) > 0 {
			return list[0]
		}
		return ""
	}
	return s
}
