package metrics

import (
	"reflect"

	"go.temporal.io/sdk/client"
)

// SameHandler reports whether two SDK handlers share one tag set (one map, not two equal ones).
func SameHandler(a, b client.MetricsHandler) bool {
	ha, okA := a.(sdkHandler)
	hb, okB := b.(sdkHandler)
	return okA && okB && reflect.ValueOf(ha.tags).Pointer() == reflect.ValueOf(hb.tags).Pointer()
}
