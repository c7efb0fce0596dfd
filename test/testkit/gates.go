package testkit

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// GateCall is one call a GateReceiver got: the body ramp sent and when.
type GateCall struct {
	Name      string            `json:"name"`
	Type      string            `json:"type"`
	Namespace string            `json:"namespace"`
	Rollout   string            `json:"rollout"`
	Phase     string            `json:"phase"`
	Revision  int64             `json:"revision"`
	Weight    int32             `json:"weight"`
	Step      int32             `json:"step"`
	Metadata  map[string]string `json:"metadata"`
	At        time.Time         `json:"-"`
}

// GateReceiver is a webhook receiver on 127.0.0.1 that answers each webhook (by its name, the
// path /NAME) with the status set for it (200 unless set), or hangs (until the caller gives
// up) when the status is 0, and records every call.
type GateReceiver struct {
	URL   string
	mu    sync.Mutex
	codes map[string]int
	calls []GateCall
}

// NewGateReceiver starts a receiver on addr (127.0.0.1:0 when empty), stopped at the test's end.
func NewGateReceiver(t testing.TB, addr string) *GateReceiver {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g := &GateReceiver{codes: map[string]int{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(g.serve))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

func (g *GateReceiver) serve(w http.ResponseWriter, r *http.Request) {
	var c GateCall
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
		http.Error(w, "bad body: "+err.Error(), http.StatusBadRequest)
		return
	}
	c.At = time.Now()
	name := r.URL.Path[1:]
	g.mu.Lock()
	g.calls = append(g.calls, c)
	code, set := g.codes[name]
	g.mu.Unlock()
	if !set {
		code = http.StatusOK
	}
	if code == 0 {
		select { // hang until ramp gives up, bounded for the test's sake
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
		return
	}
	w.WriteHeader(code)
	_, _ = w.Write([]byte("answer of " + name))
}

// Set makes the webhook name answer code from now on (0: hang).
func (g *GateReceiver) Set(name string, code int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.codes[name] = code
}

// Calls returns the calls of webhook name so far (all calls for "").
func (g *GateReceiver) Calls(name string) []GateCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []GateCall
	for _, c := range g.calls {
		if name == "" || c.Name == name {
			out = append(out, c)
		}
	}
	return out
}
