package offloop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"ramp.dev/ramp/test/testkit"
)

// gate is a fake read: it says when it starts, returns what the test releases, and records
// why it was cancelled when it was.
type gate struct {
	started  chan string
	release  chan int
	causes   chan error
	finished chan struct{}
}

func newGate() *gate {
	return &gate{started: make(chan string, 10), release: make(chan int), causes: make(chan error, 10), finished: make(chan struct{}, 10)}
}

// read returns a read named name that waits for a release or its cancellation.
func (g *gate) read(name string) func(context.Context) int {
	return func(ctx context.Context) int {
		g.started <- name
		defer func() { g.finished <- struct{}{} }()
		select {
		case v := <-g.release:
			return v
		case <-ctx.Done():
			g.causes <- context.Cause(ctx)
			return -1
		}
	}
}

// stubborn returns a read that ignores its cancellation and returns v once released.
func (g *gate) stubborn(name string, v int) func(context.Context) int {
	return func(context.Context) int {
		g.started <- name
		defer func() { g.finished <- struct{}{} }()
		<-g.release
		return v
	}
}

func none[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	default:
	}
}

func waker() (chan string, func(string)) {
	woken := make(chan string, 10)
	return woken, func(k string) { woken <- k }
}

func TestReadRunsOffTheCallerAndIsTakenOnce(t *testing.T) {
	var r Reader[string, int, int]
	g := newGate()
	woken, wake := waker()
	defer r.Close(nil)

	// Given no read of "a", when one starts, then Start returns at once with it in flight.
	if !r.Start(context.Background(), "a", g.read("first"), wake) {
		t.Fatal("Start refused the first read")
	}
	testkit.Recv(t, g.started, "start of the read")
	if !r.Busy("a") {
		t.Error("Busy(a) false while its read is in flight")
	}
	if r.Busy("b") {
		t.Error("Busy(b) true with no read of b")
	}
	if _, ok := r.Take("a"); ok {
		t.Error("Take returned a result while the read is in flight")
	}

	// When another read of "a" is asked for meanwhile, then it does not start.
	if r.Start(context.Background(), "a", g.read("second"), wake) {
		t.Error("Start started a second read of a key in flight")
	}
	none(t, g.started, "second read")

	// When the read ends, then the owner is woken with the key and takes the result once.
	g.release <- 7
	if k := testkit.Recv(t, woken, "wake"); k != "a" {
		t.Errorf("woken with %q, want a", k)
	}
	if r.Busy("a") {
		t.Error("Busy(a) after the read ended")
	}
	if v, ok := r.Take("a"); !ok || v != 7 {
		t.Errorf("Take = %d, %v; want 7, true", v, ok)
	}
	if v, ok := r.Take("a"); ok {
		t.Errorf("second Take = %d, true; want nothing", v)
	}
}

func TestResultIsNotOverwrittenBeforeItIsTaken(t *testing.T) {
	var r Reader[string, int, int]
	g := newGate()
	woken, wake := waker()
	defer r.Close(nil)
	r.Start(context.Background(), "a", g.read("first"), wake)
	testkit.Recv(t, g.started, "read")
	g.release <- 1
	testkit.Recv(t, woken, "wake")

	// Given a finished result not taken, when another read is asked for, then it waits for
	// the Take.
	if r.Start(context.Background(), "a", g.read("second"), wake) {
		t.Fatal("Start ran a read over a result not taken")
	}
	if v, _ := r.Take("a"); v != 1 {
		t.Fatalf("Take = %d, want 1", v)
	}
	if !r.Start(context.Background(), "a", g.read("second"), wake) {
		t.Fatal("Start refused after the Take")
	}
	testkit.Recv(t, g.started, "second read")
	g.release <- 2
	testkit.Recv(t, woken, "wake")
	if v, _ := r.Take("a"); v != 2 {
		t.Errorf("Take = %d, want 2", v)
	}
}

func TestDropCancelsTheReadAndForgetsTheKey(t *testing.T) {
	var r Reader[string, string, int]
	g := newGate()
	woken, wake := waker()
	defer r.Close(nil)
	dropped := errors.New("dropped")
	r.Put("a", "state of a")
	r.Start(context.Background(), "a", g.read("a"), wake)
	testkit.Recv(t, g.started, "read")

	// When a key in flight is dropped, then its read is cancelled with the cause, nobody
	// is woken, and the key, its state and its result are gone.
	r.Drop("a", dropped)
	if cause := testkit.Recv(t, g.causes, "cancellation"); !errors.Is(cause, dropped) {
		t.Errorf("cancelled with %v, want %v", cause, dropped)
	}
	testkit.Recv(t, g.finished, "end of the read")
	if _, ok := r.State("a"); ok {
		t.Error("State(a) held after Drop")
	}
	if r.Busy("a") {
		t.Error("Busy(a) after Drop")
	}
	if _, ok := r.Take("a"); ok {
		t.Error("the dropped read's result was kept")
	}
	if len(r.Keys()) != 0 {
		t.Errorf("Keys = %v after Drop", r.Keys())
	}
	none(t, woken, "wake after a dropped read")
}

func TestLateReadOfADroppedKeyDoesNotTouchItsNewSlot(t *testing.T) {
	var r Reader[string, string, int]
	g := newGate()
	woken, wake := waker()
	defer r.Close(nil)

	// Given a read that ignores its cancellation, when its key is dropped and held again
	// with a new read, then the old read's end keeps nothing and wakes nobody.
	r.Start(context.Background(), "a", g.stubborn("old", 1), wake)
	testkit.Recv(t, g.started, "old read")
	r.Drop("a", nil)
	r.Put("a", "new")
	if !r.Start(context.Background(), "a", g.stubborn("new", 2), wake) {
		t.Fatal("Start refused a read of a key dropped and held again")
	}
	testkit.Recv(t, g.started, "new read")
	g.release <- 0 // one of the two ends
	testkit.Recv(t, g.finished, "end of a read")
	g.release <- 0 // then the other
	if k := testkit.Recv(t, woken, "wake"); k != "a" {
		t.Errorf("woken with %q", k)
	}
	none(t, woken, "second wake")
	if v, ok := r.Take("a"); !ok || v != 2 {
		t.Errorf("Take = %d, %v; want the new read's 2", v, ok)
	}
	if s, _ := r.State("a"); s != "new" {
		t.Errorf("State = %q, want new", s)
	}
}

func TestCancelKeepsStateAndAnUntakenResult(t *testing.T) {
	var r Reader[string, string, int]
	g := newGate()
	woken, wake := waker()
	defer r.Close(nil)
	r.Put("a", "kept")
	r.Start(context.Background(), "a", g.read("a"), wake)
	testkit.Recv(t, g.started, "read")

	// When the read in flight is cancelled, then the cause reaches it, its result is thrown
	// away, and the key keeps its state and may read again.
	r.Cancel("a", nil)
	if cause := testkit.Recv(t, g.causes, "cancellation"); !errors.Is(cause, context.Canceled) {
		t.Errorf("cancelled with %v, want context.Canceled", cause)
	}
	testkit.Recv(t, g.finished, "end of the read")
	none(t, woken, "wake after a cancelled read")
	if s, ok := r.State("a"); !ok || s != "kept" {
		t.Errorf("State = %q, %v; want kept", s, ok)
	}
	if !r.Start(context.Background(), "a", g.read("again"), wake) {
		t.Fatal("Start refused after Cancel")
	}
	testkit.Recv(t, g.started, "read again")
	g.release <- 3
	testkit.Recv(t, woken, "wake")

	// A result already finished survives a Cancel.
	r.Cancel("a", nil)
	if v, ok := r.Take("a"); !ok || v != 3 {
		t.Errorf("Take = %d, %v; want 3", v, ok)
	}
}

func TestCallersContextEndsTheRead(t *testing.T) {
	var r Reader[string, int, int]
	g := newGate()
	woken, wake := waker()
	defer r.Close(nil)
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx, "a", g.read("a"), wake)
	testkit.Recv(t, g.started, "read")

	// When the context Start was given ends, then the read is cancelled and its result not
	// kept; a done context starts no read.
	cancel()
	testkit.Recv(t, g.causes, "cancellation")
	testkit.Recv(t, g.finished, "end of the read")
	none(t, woken, "wake")
	if r.Start(ctx, "b", g.read("late"), wake) {
		t.Error("Start ran a read with a done context")
	}
	r.Close(nil) // waits for the read's goroutine to let go of its slot
	if _, ok := r.Take("a"); ok {
		t.Error("a read whose context ended kept its result")
	}
}

func TestCloseCancelsWaitsAndStartsNoMore(t *testing.T) {
	var r Reader[string, int, int]
	closed := errors.New("closed")
	causes := make(chan error, 2)
	letGo := make(chan struct{})
	// read ends only once the test lets it go after its cancellation.
	read := func(ctx context.Context) int {
		<-ctx.Done()
		causes <- context.Cause(ctx)
		<-letGo
		return 0
	}
	r.Start(context.Background(), "a", read, nil)
	r.Start(context.Background(), "b", read, nil)

	// When the reader closes, then both reads are cancelled with the cause, and Close
	// returns only once they have ended.
	closeDone := make(chan struct{})
	go func() { r.Close(closed); close(closeDone) }()
	for range 2 {
		if cause := testkit.Recv(t, causes, "cancellation"); !errors.Is(cause, closed) {
			t.Errorf("cancelled with %v, want %v", cause, closed)
		}
	}
	select {
	case <-closeDone:
		t.Fatal("Close returned while its reads still ran")
	default:
	}
	close(letGo)
	testkit.Recv(t, closeDone, "end of Close")
	if r.Start(context.Background(), "c", read, nil) {
		t.Error("Start ran a read after Close")
	}
}

func TestKeysAndState(t *testing.T) {
	var r Reader[int, string, int]
	if _, ok := r.State(1); ok {
		t.Error("a zero Reader holds a key")
	}
	r.Put(1, "one")
	r.Put(2, "two")
	r.Put(1, "uno")
	keys := map[int]bool{}
	for _, k := range r.Keys() {
		keys[k] = true
	}
	if len(keys) != 2 || !keys[1] || !keys[2] {
		t.Errorf("Keys = %v, want 1 and 2", r.Keys())
	}
	if s, _ := r.State(1); s != "uno" {
		t.Errorf("State(1) = %q, want uno", s)
	}
	r.Close(nil) // nothing in flight: returns
}

// TestManyKeysAtOnce runs reads of many keys from many goroutines, for the race detector.
func TestManyKeysAtOnce(t *testing.T) {
	var r Reader[string, int, int]
	defer r.Close(nil)
	const n = 50
	woken := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k := fmt.Sprint(i)
			r.Put(k, i)
			r.Start(context.Background(), k, func(context.Context) int { return i * i }, func(k string) { woken <- k })
		})
	}
	wg.Wait()
	for range n {
		k := testkit.Recv(t, woken, "wake")
		var i int
		fmt.Sscan(k, &i)
		if v, ok := r.Take(k); !ok || v != i*i {
			t.Errorf("Take(%s) = %d, %v; want %d", k, v, ok, i*i)
		}
		if s, _ := r.State(k); s != i {
			t.Errorf("State(%s) = %d, want %d", k, s, i)
		}
	}
}
