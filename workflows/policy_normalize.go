package workflows

import (
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/workflow"
)

// normalizeHardReasons drops duplicates and reports unknown reasons. A list that is already
// clean is kept as it is: every idle agent holds its policy, so a copy per agent is memory
// spent on nothing.
func normalizeHardReasons(reasons []string, errs *FieldErrors) []string {
	clean := true
	for i, r := range reasons {
		if !slices.Contains(knownReasons, r) {
			errs.add(fmt.Sprintf("policy.anomaly.hard_reasons[%d]", i), "unknown decline reason %q (known: %s)", r, strings.Join(knownReasons, ", "))
			clean = false
		} else if slices.Contains(reasons[:i], r) {
			clean = false
		}
	}
	if clean {
		return reasons
	}
	hard := make([]string, 0, len(reasons))
	for _, r := range reasons {
		if slices.Contains(knownReasons, r) && !slices.Contains(hard, r) {
			hard = append(hard, r)
		}
	}
	return hard
}

// normalizeWeights checks the given weights and fills in the default of every reason not
// given. A map that already names every reason with a valid weight (what a stored or
// continued policy carries) is kept as it is rather than copied, for the same reason as above.
func normalizeWeights(given map[string]int, errs *FieldErrors) map[string]int {
	complete := len(given) >= len(defaultReasonWeights)
	for _, r := range workflow.DeterministicKeys(given) {
		w := given[r]
		field := "policy.anomaly.reason_weights." + r
		switch {
		case !slices.Contains(knownReasons, r):
			errs.add(field, "unknown decline reason (known: %s)", strings.Join(knownReasons, ", "))
			complete = false
		case w < 0 || w > maxWeight:
			errs.add(field, "must be between 0 and %d, got %d", maxWeight, w)
			complete = false
		}
	}
	for r := range defaultReasonWeights {
		if _, ok := given[r]; !ok {
			complete = false
		}
	}
	if complete {
		return given
	}
	weights := make(map[string]int, len(defaultReasonWeights)+len(given))
	for r, w := range defaultReasonWeights {
		weights[r] = w
	}
	for r, w := range given {
		if slices.Contains(knownReasons, r) && w >= 0 && w <= maxWeight {
			weights[r] = w
		}
	}
	return weights
}
