package workflows_test

import (
	"reflect"
	"testing"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/workflows"
)

// Every activity the workflows call through a typed handle exists in package activities under
// the same name and with the same signature: the handle's signature is the one the SDK checks
// the workflow's arguments against, the implementation's the one the worker decodes them for.
func TestActivityRefsMatchTheActivities(t *testing.T) {
	impls := []reflect.Type{reflect.TypeFor[*activities.Activities](), reflect.TypeFor[*activities.Fleet]()}
	n := 0
	for _, ref := range workflows.ActivityRefs {
		rt := reflect.TypeOf(ref)
		for i := range rt.NumMethod() {
			m := rt.Method(i)
			n++
			var impl *reflect.Method
			for _, it := range impls {
				if im, ok := it.MethodByName(m.Name); ok {
					impl = &im
					break
				}
			}
			if impl == nil {
				t.Errorf("%s.%s: no activity of that name in package activities", rt, m.Name)
				continue
			}
			if got, want := signature(impl.Type), signature(m.Type); got != want {
				t.Errorf("%s: the activity is %s, the workflow calls %s", m.Name, got, want)
			}
		}
	}
	if n != 16 {
		t.Errorf("%d typed activities, want 16 (14 of the agent's, 2 of the fleet's)", n)
	}
}

// signature is a method's type without its receiver.
func signature(ft reflect.Type) string {
	s := "func("
	for i := 1; i < ft.NumIn(); i++ {
		if i > 1 {
			s += ", "
		}
		s += ft.In(i).String()
	}
	s += ") ("
	for i := range ft.NumOut() {
		if i > 0 {
			s += ", "
		}
		s += ft.Out(i).String()
	}
	return s + ")"
}
