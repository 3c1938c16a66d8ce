// Package temporalsetup prepares a Temporal namespace for cardwarden, idempotently: the
// namespace itself (a fresh cluster has none but, at most, "default"), the AgentId,
// CardStatus and Issuer search attributes, and a check that visibility queries on them work
// (a fresh attribute takes a moment to reach the server's caches). `cardwarden setup`, the
// production-topology test and `cardwarden bench --address` use it.
package temporalsetup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cardwarden/cardwarden/workflows"
)

// SearchAttributes are the custom search attributes cardwarden's workflows set (keywords).
func SearchAttributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		workflows.SearchAttrAgentID:    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		workflows.SearchAttrCardStatus: enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		workflows.SearchAttrIssuer:     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	}
}

// Options tune Ensure.
type Options struct {
	// Retention of closed workflows in a namespace Ensure creates; 30 days when zero.
	Retention time.Duration
	// Wait bounds how long Ensure waits for a new namespace and attributes to be usable; two
	// minutes when zero.
	Wait time.Duration
	// Logger says what Ensure does; slog.Default when nil.
	Logger *slog.Logger
}

// Report says what Ensure found and did.
type Report struct {
	Namespace        string   `json:"namespace"`
	NamespaceCreated bool     `json:"namespace_created"`
	Added            []string `json:"search_attributes_added"`
	Present          []string `json:"search_attributes_present"`
}

// Ensure makes namespace ready for cardwarden: it creates it when it does not exist, adds the
// search attributes it lacks (an attribute of the same name and another type is an error, not
// something to overwrite), and waits until a visibility query on them succeeds. Running it
// again changes nothing.
func Ensure(ctx context.Context, c client.Client, namespace string, o Options) (Report, error) {
	if o.Retention <= 0 {
		o.Retention = 30 * 24 * time.Hour
	}
	if o.Wait <= 0 {
		o.Wait = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ctx, cancel := context.WithTimeout(ctx, o.Wait)
	defer cancel()
	rep := Report{Namespace: namespace}
	ws := c.WorkflowService()
	_, err := ws.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	var nf *serviceerror.NamespaceNotFound
	switch {
	case errors.As(err, &nf):
		_, err = ws.RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace: namespace, WorkflowExecutionRetentionPeriod: durationpb.New(o.Retention),
			Description: "cardwarden: one AgentCard workflow per agent",
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if err != nil && !errors.As(err, &exists) {
			return rep, fmt.Errorf("create namespace %s: %w", namespace, err)
		}
		rep.NamespaceCreated = err == nil
		o.Logger.Info("namespace created", "namespace", namespace, "retention", o.Retention)
	case err != nil:
		return rep, fmt.Errorf("describe namespace %s: %w", namespace, err)
	}

	want := SearchAttributes()
	// A namespace just created takes a moment to reach every service: retry until the
	// operator service knows it.
	var have map[string]enumspb.IndexedValueType
	if err := retry(ctx, func() error {
		resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
		if err != nil {
			return err
		}
		have = resp.GetCustomAttributes()
		return nil
	}); err != nil {
		return rep, fmt.Errorf("list search attributes of %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range sortedKeys(want) {
		got, ok := have[name]
		switch {
		case !ok:
			missing[name] = want[name]
			rep.Added = append(rep.Added, name)
		case got != want[name]:
			return rep, fmt.Errorf("search attribute %s of namespace %s is %s, cardwarden needs %s: remove it or use another namespace",
				name, namespace, got, want[name])
		default:
			rep.Present = append(rep.Present, name)
		}
	}
	if len(missing) > 0 {
		if err := retry(ctx, func() error {
			_, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
			var exists *serviceerror.AlreadyExists
			if errors.As(err, &exists) {
				return nil
			}
			return err
		}); err != nil {
			return rep, fmt.Errorf("add search attributes %s to %s: %w", strings.Join(rep.Added, ", "), namespace, err)
		}
		o.Logger.Info("search attributes added", "namespace", namespace, "attributes", rep.Added)
	}
	if err := WaitUsable(ctx, c, namespace); err != nil {
		return rep, err
	}
	return rep, nil
}

// WaitUsable waits until a visibility query on cardwarden's search attributes succeeds in
// namespace: right after they are added, the server may still answer "no mapping defined for
// search attribute".
func WaitUsable(ctx context.Context, c client.Client, namespace string) error {
	q := fmt.Sprintf("%s = '' OR %s = '' OR %s = ''", workflows.SearchAttrAgentID, workflows.SearchAttrCardStatus, workflows.SearchAttrIssuer)
	err := retry(ctx, func() error {
		_, err := c.WorkflowService().ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: namespace, Query: q, PageSize: 1})
		return err
	})
	if err != nil {
		return fmt.Errorf("search attributes of %s not usable yet: %w", namespace, err)
	}
	return nil
}

// retry calls fn until it succeeds or ctx ends, returning its last error then.
func retry(ctx context.Context, fn func() error) error {
	delay := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

func sortedKeys(m map[string]enumspb.IndexedValueType) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
