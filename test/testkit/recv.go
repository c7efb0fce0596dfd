package testkit

import (
	"testing"
	"time"
)

// Recv receives from ch, failing the test when nothing comes within 10 s; what names the
// value for the failure.
func Recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		panic("unreachable")
	}
}
