package workflows

// ActivityRefs are the typed activity handles (activity_refs.go), for the test that compares
// them with package activities.
var ActivityRefs = []any{ia, ba, la, fa}
