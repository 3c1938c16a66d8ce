package workflows

import (
	"fmt"
	"strings"
)

// FieldError is one invalid policy or request field.
type FieldError struct {
	Field string // e.g. "policy.timezone"
	Msg   string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Msg }

// FieldErrors is every problem found, so a person fixes them all in one go.
type FieldErrors []FieldError

func (es FieldErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

func (es *FieldErrors) add(field, format string, args ...any) {
	*es = append(*es, FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (es FieldErrors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}
