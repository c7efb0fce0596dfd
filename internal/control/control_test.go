package control

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestInvalidKeepsTextAndProblems(t *testing.T) {
	joined := errors.Join(errors.New("spec.a: 1 is bad"), errors.New("spec.b: is required\n  (see docs)"))
	err := Invalid(joined)
	if !errors.Is(err, ErrInvalid) {
		t.Error("Invalid(err) is not ErrInvalid")
	}
	if err.Error() != joined.Error() {
		t.Errorf("text %q, want %q", err.Error(), joined.Error())
	}
	want := []string{"spec.a: 1 is bad", "spec.b: is required", "(see docs)"}
	if got := Problems(err); !slices.Equal(got, want) {
		t.Errorf("Problems = %q, want %q", got, want)
	}
	if Invalid(nil) != nil {
		t.Error("Invalid(nil) is not nil")
	}
	if errors.Is(fmt.Errorf("x: %w", ErrConflict), ErrInvalid) {
		t.Error("a conflict reads as invalid")
	}
}
