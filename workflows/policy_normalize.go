package workflows

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.temporal.io/sdk/workflow"
)

// A policy with an error is refused whole (Normalize returns no policy), so these only report
// bad entries; what they return matters for a valid policy alone. Lists and maps that need no
// change are kept as they are rather than copied: every idle agent holds its policy for life.

// normalizeHardReasons reports unknown reasons and drops duplicates.
func normalizeHardReasons(reasons []string, errs *FieldErrors) []string {
	dup := false
	for i, r := range reasons {
		if !slices.Contains(knownReasons, r) {
			errs.add(fmt.Sprintf("policy.anomaly.hard_reasons[%d]", i), "unknown decline reason %q (known: %s)", r, strings.Join(knownReasons, ", "))
		}
		dup = dup || slices.Contains(reasons[:i], r)
	}
	if !dup {
		return reasons
	}
	var hard []string
	for _, r := range reasons {
		if !slices.Contains(hard, r) {
			hard = append(hard, r)
		}
	}
	return hard
}

// normalizeWeights reports bad weights and fills in the default of every reason not given.
func normalizeWeights(given map[string]int, errs *FieldErrors) map[string]int {
	for _, r := range workflow.DeterministicKeys(given) {
		field := "policy.anomaly.reason_weights." + r
		if w := given[r]; !slices.Contains(knownReasons, r) {
			errs.add(field, "unknown decline reason (known: %s)", strings.Join(knownReasons, ", "))
		} else if w < 0 || w > maxWeight {
			errs.add(field, "must be between 0 and %d, got %d", maxWeight, w)
		}
	}
	complete := true
	for r := range defaultReasonWeights {
		_, ok := given[r]
		complete = complete && ok
	}
	if complete {
		return given
	}
	weights := maps.Clone(defaultReasonWeights)
	maps.Copy(weights, given)
	return weights
}
