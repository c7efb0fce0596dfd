package spec

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// FieldError is one problem with one field.
type FieldError struct {
	// Path names the field, e.g. "spec.strategy.canary.steps[2].setWeight". In a bundle of
	// more than one document it starts with the document, e.g. "rollout/chat-api: spec.replicas".
	Path string
	// Value is the bad value. Nil means the message stands without a value (a missing field,
	// a parse error).
	Value any
	// Msg says what is wrong, e.g. "is not between 0 and 100".
	Msg string
}

// Error renders "path: value msg", or "path: msg" when Value is nil.
// A path with line breaks or other unprintable characters (a field name the user wrote) is
// quoted, so that one problem stays on one line.
func (e *FieldError) Error() string {
	path := e.Path
	if strings.ContainsFunc(path, func(r rune) bool { return !unicode.IsPrint(r) }) {
		path = strconv.Quote(path)
	}
	if e.Value == nil {
		return path + ": " + e.Msg
	}
	return path + ": " + formatValue(e.Value) + " " + e.Msg
}

func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case *intstr.IntOrString:
		if x.Type == intstr.String {
			return fmt.Sprintf("%q", x.StrVal)
		}
		return fmt.Sprintf("%d", x.IntVal)
	case intstr.IntOrString:
		return formatValue(&x)
	case *int32:
		return fmt.Sprintf("%d", *x)
	}
	return fmt.Sprintf("%v", v)
}

// Errors is every problem found, in the order of the input. A nil or empty Errors is no error;
// functions that return error return nil rather than an empty Errors.
type Errors []*FieldError

// Error renders one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// errList collects errors under a path prefix.
type errList struct {
	errs Errors
}

func (l *errList) add(path string, value any, format string, args ...any) {
	// One problem per line: a newline from the input (in a compiler message) is escaped.
	msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", `\n`)
	l.errs = append(l.errs, &FieldError{Path: path, Value: value, Msg: msg})
}

// asError returns nil for no errors, so a typed nil never hides in an error interface.
func (es Errors) asError() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// prefixed returns the errors with prefix+": " put before each path.
func (es Errors) prefixed(prefix string) Errors {
	if prefix == "" {
		return es
	}
	out := make(Errors, len(es))
	for i, e := range es {
		c := *e
		c.Path = prefix + ": " + e.Path
		out[i] = &c
	}
	return out
}
