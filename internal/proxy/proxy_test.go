package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"ramp.dev/ramp/test/testkit"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// statsOf waits until revision rev has recorded n requests since since (a request is recorded
// just after its response ends, so the client can be a little ahead), then returns its stats.
func statsOf(t *testing.T, p *Proxy, rev int64, since time.Time, n int64) RequestStats {
	t.Helper()
	waitFor(t, 5*time.Second, fmt.Sprintf("%d requests recorded for revision %d", n, rev), func() bool {
		return p.Stats(rev, since).Requests >= n
	})
	return p.Stats(rev, since)
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// upstream starts an instance that answers with its id, or runs h when given.
func upstream(t *testing.T, id string, h http.HandlerFunc) Backend {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			if r.Body != nil {
				b, _ := io.ReadAll(r.Body)
				w.Header().Set("X-Body", string(b))
			}
			io.WriteString(w, id)
		}
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return Backend{ID: id, Addr: s.Listener.Addr().String()}
}

// deadBackend returns a backend whose address refuses connections.
func deadBackend(t *testing.T, id string) Backend {
	t.Helper()
	return Backend{ID: id, Addr: testkit.RefusedAddr(t)}
}

type front struct {
	url    string
	client *http.Client
}

// serve serves h as local mode does: NewServer and Serve (the fast server in front of a
// Proxy, unless the proxy's settings turn it off). With RAMP_TEST_NETHTTP=1 in the
// environment it serves h with net/http's server alone, as before the fast server.
func serve(t *testing.T, h http.Handler) front {
	t.Helper()
	if os.Getenv("RAMP_TEST_NETHTTP") == "1" {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		t.Cleanup(tr.CloseIdleConnections)
		return front{url: s.URL, client: &http.Client{Transport: tr}}
	}
	srv := NewServer(h, ServerConfig{Logger: quietLogger()})
	ln := serveLocal(t, srv)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return front{url: "http://" + ln.Addr().String(), client: &http.Client{Transport: tr}}
}

// get sends a GET with optional headers and returns status, body and the revision header.
func (f front) get(t *testing.T, path string, hdr ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, string(b), resp.Header.Get(RevisionHeader)
}

func TestWeightedSplit(t *testing.T) {
	a, b := upstream(t, "a", nil), upstream(t, "b", nil)
	dead := Backend{ID: "drained", Addr: a.Addr}
	tests := []struct {
		name  string
		pools []Pool
		drain string
		n     int
		want  map[string]int // revision -> expected count
		tol   int
	}{
		{"90/10", []Pool{{Revision: 1, Weight: 90, Backends: []Backend{a}}, {Revision: 2, Weight: 10, Backends: []Backend{b}}},
			"", 2000, map[string]int{"1": 1800, "2": 200}, 90},
		{"0/100", []Pool{{Revision: 1, Weight: 0, Backends: []Backend{a}}, {Revision: 2, Weight: 100, Backends: []Backend{b}}},
			"", 200, map[string]int{"2": 200}, 0},
		{"100/0", []Pool{{Revision: 1, Weight: 100, Backends: []Backend{a}}, {Revision: 2, Weight: 0, Backends: []Backend{b}}},
			"", 200, map[string]int{"1": 200}, 0},
		{"weighted pool has no backend", []Pool{{Revision: 1, Weight: 0, Backends: []Backend{a}}, {Revision: 2, Weight: 100}},
			"", 100, map[string]int{"1": 100}, 0},
		{"weighted pool drained", []Pool{{Revision: 1, Weight: 0, Backends: []Backend{a}}, {Revision: 2, Weight: 100, Backends: []Backend{dead}}},
			"drained", 100, map[string]int{"1": 100}, 0},
		{"all zero takes the highest", []Pool{{Revision: 1, Weight: 0, Backends: []Backend{a}}, {Revision: 2, Weight: 0, Backends: []Backend{b}}},
			"", 100, map[string]int{"1": 100}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New("chat-api", Options{Logger: quietLogger()})
			p.SetTable(Table{Pools: tc.pools})
			if tc.drain != "" {
				p.Drain(tc.drain)
			}
			f := serve(t, p)
			got := map[string]int{}
			for range tc.n {
				code, _, rev := f.get(t, "/")
				if code != http.StatusOK {
					t.Fatalf("status %d", code)
				}
				got[rev]++
			}
			for rev, c := range got {
				if _, ok := tc.want[rev]; !ok {
					t.Errorf("revision %q got %d requests, want none", rev, c)
				}
			}
			for rev, w := range tc.want {
				if d := got[rev] - w; d > tc.tol || d < -tc.tol {
					t.Errorf("revision %s got %d requests, want %d±%d", rev, got[rev], w, tc.tol)
				}
			}
		})
	}
}

func TestRoundRobinWithinPool(t *testing.T) {
	a, b := upstream(t, "a", nil), upstream(t, "b", nil)
	p := New("chat-api", Options{Logger: quietLogger()})
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{a, b}}}})
	f := serve(t, p)
	got := map[string]int{}
	for range 100 {
		_, body, _ := f.get(t, "/")
		got[body]++
	}
	if got["a"] != 50 || got["b"] != 50 {
		t.Errorf("sequential requests split %v, want 50/50", got)
	}
}

func TestHeaderRoutes(t *testing.T) {
	stable, canary := upstream(t, "stable", nil), upstream(t, "canary", nil)
	pools := []Pool{
		{Revision: 1, Role: "stable", Weight: 100, Backends: []Backend{stable}},
		{Revision: 2, Role: "canary", Weight: 0, Backends: []Backend{canary}},
		{Revision: 3, Role: "canary", Weight: 0}, // no instance
	}
	tests := []struct {
		name   string
		routes []HeaderRoute
		hdr    []string
		want   string
	}{
		{"exact", []HeaderRoute{{Match: []Match{{Header: "x-version", Exact: "canary"}}, Revision: 2}},
			[]string{"X-Version", "canary"}, "canary"},
		{"exact miss", []HeaderRoute{{Match: []Match{{Header: "x-version", Exact: "canary"}}, Revision: 2}},
			[]string{"X-Version", "canary2"}, "stable"},
		{"no header", []HeaderRoute{{Match: []Match{{Header: "x-version", Exact: "canary"}}, Revision: 2}},
			nil, "stable"},
		{"prefix", []HeaderRoute{{Match: []Match{{Header: "x-version", Prefix: "can"}}, Revision: 2}},
			[]string{"X-Version", "canary"}, "canary"},
		{"regex", []HeaderRoute{{Match: []Match{{Header: "x-version", Regex: regexp.MustCompile(`^c.n.ry$`)}}, Revision: 2}},
			[]string{"X-Version", "canary"}, "canary"},
		{"all must hold", []HeaderRoute{{Match: []Match{{Header: "x-version", Exact: "canary"}, {Header: "x-user", Exact: "beta"}}, Revision: 2}},
			[]string{"X-Version", "canary"}, "stable"},
		{"all hold", []HeaderRoute{{Match: []Match{{Header: "x-version", Exact: "canary"}, {Header: "x-user", Exact: "beta"}}, Revision: 2}},
			[]string{"X-Version", "canary", "X-User", "beta"}, "canary"},
		{"empty match matches nothing", []HeaderRoute{{Revision: 2}}, nil, "stable"},
		{"route without instances falls through", []HeaderRoute{
			{Match: []Match{{Header: "x-version", Exact: "canary"}}, Revision: 3},
			{Match: []Match{{Header: "x-version", Prefix: "c"}}, Revision: 2},
		}, []string{"X-Version", "canary"}, "canary"},
		{"route without instances falls to weights", []HeaderRoute{{Match: []Match{{Header: "x-version", Exact: "canary"}}, Revision: 3}},
			[]string{"X-Version", "canary"}, "stable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New("chat-api", Options{Logger: quietLogger()})
			p.SetTable(Table{Pools: pools, HeaderRoutes: tc.routes})
			f := serve(t, p)
			for range 20 {
				code, body, _ := f.get(t, "/", tc.hdr...)
				if code != http.StatusOK || body != tc.want {
					t.Fatalf("got %d %q, want 200 %q", code, body, tc.want)
				}
			}
		})
	}
}

func TestNoReadyInstance(t *testing.T) {
	p := New("chat-api", Options{Logger: quietLogger()})
	f := serve(t, p)
	code, body, _ := f.get(t, "/")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no ready instance for rollout chat-api") {
		t.Errorf("empty table: got %d %q", code, body)
	}
	a := upstream(t, "a", nil)
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{a}}}})
	p.Drain("a")
	if code, _, _ := f.get(t, "/"); code != http.StatusServiceUnavailable {
		t.Errorf("all drained: got %d, want 503", code)
	}
}

func TestStreamsEachToken(t *testing.T) {
	for _, ct := range []string{"text/event-stream", "application/x-ndjson"} {
		t.Run(ct, func(t *testing.T) { testStreamsEachToken(t, ct) })
	}
}

func testStreamsEachToken(t *testing.T, contentType string) {
	next := make(chan struct{})
	up := upstream(t, "sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "data: tok %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	})
	p := New("chat-api", Options{Logger: quietLogger()})
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{up}}}})
	f := serve(t, p)
	// A proxy that buffers would hold back even the headers: bound the whole exchange so such
	// a bug fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url+"/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() != "" {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	for i := 1; i <= 3; i++ {
		// The upstream does not write token i+1 until we signal: if the proxy buffered,
		// token i would never arrive.
		select {
		case l := <-lines:
			if want := fmt.Sprintf("data: tok %d", i); l != want {
				t.Fatalf("got %q, want %q", l, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("token %d did not reach the client before the upstream was told to go on", i)
		}
		next <- struct{}{}
	}
}

func TestSetTableUnderLoad(t *testing.T) {
	stable := []Backend{upstream(t, "s1", nil), upstream(t, "s2", nil)}
	canary := []Backend{upstream(t, "c1", nil), upstream(t, "c2", nil)}
	p := New("chat-api", Options{Logger: quietLogger()})
	table := func(w int32) Table {
		return Table{Pools: []Pool{
			{Revision: 1, Role: "stable", Weight: 100 - w, Backends: stable},
			{Revision: 2, Role: "canary", Weight: w, Backends: canary},
		}}
	}
	p.SetTable(table(0))
	f := serve(t, p)
	var failed, total atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := f.client.Get(f.url + "/")
				total.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		})
	}
	for round := 0; round < 3; round++ {
		for w := int32(0); w <= 100; w += 10 {
			p.SetTable(table(w))
			before := total.Load()
			waitFor(t, 10*time.Second, "requests under the new table", func() bool { return total.Load() >= before+20 })
		}
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed while the table changed", failed.Load(), total.Load())
	}
	if s := p.Stats(2, time.Now().Add(-time.Minute)); s.Requests == 0 {
		t.Error("the canary got no request at all")
	}
}

func TestDrainAndWaitIdle(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := upstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "a")
	})
	releaseSlow := sync.OnceFunc(func() { close(release) })
	other := upstream(t, "b", nil)
	p := New("chat-api", Options{Logger: quietLogger()})
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{slow}}}})
	f := serve(t, p)
	t.Cleanup(releaseSlow) // runs before the servers close, should the test fail early

	slowDone := make(chan int, 1)
	go func() {
		resp, err := f.client.Get(f.url + "/slow")
		if err != nil {
			slowDone <- -1
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		slowDone <- resp.StatusCode
	}()
	<-entered
	// a alone carries the weight: only the drain keeps new requests off it.
	p.SetTable(Table{Pools: []Pool{
		{Revision: 1, Weight: 100, Backends: []Backend{slow}},
		{Revision: 2, Weight: 0, Backends: []Backend{other}},
	}})
	p.Drain("a")
	if n := p.InFlight("a"); n != 1 {
		t.Fatalf("in flight to a = %d, want 1", n)
	}

	idle := make(chan error, 1)
	go func() { idle <- p.WaitIdle(context.Background(), "a") }()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.WaitIdle(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitIdle with a canceled context = %v, want context.Canceled", err)
	}

	for range 20 {
		if code, body, _ := f.get(t, "/"); code != http.StatusOK || body != "b" {
			t.Fatalf("new request after drain: %d %q, want 200 from b", code, body)
		}
	}
	select {
	case err := <-idle:
		t.Fatalf("WaitIdle returned %v while a request was in flight", err)
	default:
	}
	releaseSlow()
	if code := <-slowDone; code != http.StatusOK {
		t.Errorf("in-flight request to the drained backend: status %d, want 200", code)
	}
	select {
	case err := <-idle:
		if err != nil {
			t.Errorf("WaitIdle = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitIdle did not return after the last request finished")
	}
	if err := p.WaitIdle(context.Background(), "unknown"); err != nil {
		t.Errorf("WaitIdle(unknown) = %v", err)
	}

	// Once a backend leaves the table the drain mark is gone: it serves again when it comes back.
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{other}}}})
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{slow}}}})
	if code, body, _ := f.get(t, "/"); code != http.StatusOK || body != "a" {
		t.Errorf("re-added backend: %d %q, want 200 from a", code, body)
	}
}

func TestRetryOnConnectionRefused(t *testing.T) {
	live := upstream(t, "live", nil)
	tests := []struct {
		name  string
		pools []Pool
		want  string // revision
	}{
		{"same pool", []Pool{{Revision: 1, Weight: 100, Backends: []Backend{deadBackend(t, "dead"), live}}}, "1"},
		{"other pool", []Pool{
			{Revision: 1, Weight: 100, Backends: []Backend{deadBackend(t, "dead")}},
			{Revision: 2, Weight: 0, Backends: []Backend{live}},
		}, "2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New("chat-api", Options{Logger: quietLogger()})
			p.SetTable(Table{Pools: tc.pools})
			f := serve(t, p)
			for i := range 30 {
				code, _, rev := f.get(t, "/")
				if code != http.StatusOK || rev != tc.want {
					t.Fatalf("GET %d: status %d revision %q, want 200 from %s", i, code, rev, tc.want)
				}
				body := fmt.Sprintf(`{"prompt":%d}`, i)
				resp, err := f.client.Post(f.url+"/", "application/json", strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Body") != body {
					t.Fatalf("POST %d: status %d body seen %q, want 200 and %q", i, resp.StatusCode, resp.Header.Get("X-Body"), body)
				}
			}
			rev, _ := strconv.ParseInt(tc.want, 10, 64)
			if s := statsOf(t, p, rev, time.Now().Add(-time.Minute), 60); s.Errors != 0 || s.Requests != 60 {
				t.Errorf("stats %+v, want 60 requests and no error", s)
			}
		})
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Run("refused with no alternative is 502 and an error", func(t *testing.T) {
		p := New("chat-api", Options{Logger: quietLogger()})
		p.SetTable(Table{Pools: []Pool{{Revision: 4, Weight: 100, Backends: []Backend{deadBackend(t, "dead")}}}})
		f := serve(t, p)
		for range 3 {
			if code, _, rev := f.get(t, "/"); code != http.StatusBadGateway || rev != "4" {
				t.Fatalf("got %d from revision %q, want 502 from 4", code, rev)
			}
		}
		s := statsOf(t, p, 4, time.Now().Add(-time.Minute), 3)
		if s.Requests != 3 || s.Errors != 3 || s.Errors5xx != 0 {
			t.Errorf("stats %+v, want 3 requests, 3 errors, 0 5xx from instances", s)
		}
		if s.TTFB.Count() != 0 || s.Latency.Count() != 3 {
			t.Errorf("ttfb count %d latency count %d, want 0 and 3", s.TTFB.Count(), s.Latency.Count())
		}
	})
	t.Run("streamed body is not retried", func(t *testing.T) {
		live := upstream(t, "live", nil)
		p := New("chat-api", Options{Logger: quietLogger()})
		p.SetTable(Table{Pools: []Pool{
			{Revision: 1, Weight: 100, Backends: []Backend{deadBackend(t, "dead")}},
			{Revision: 2, Weight: 0, Backends: []Backend{live}},
		}})
		f := serve(t, p)
		// A reader of unknown length makes the client send the body chunked.
		resp, err := f.client.Post(f.url+"/", "text/plain", io.MultiReader(strings.NewReader("streamed")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("got %d, want 502: a body of unknown length cannot be sent twice", resp.StatusCode)
		}
	})
	t.Run("hung upstream is 504 when a timeout is set", func(t *testing.T) {
		hung := make(chan struct{})
		t.Cleanup(func() { close(hung) })
		up := upstream(t, "hung", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-hung:
			case <-r.Context().Done():
			}
		})
		p := New("chat-api", Options{Logger: quietLogger(), ResponseHeaderTimeout: 50 * time.Millisecond})
		p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{up}}}})
		f := serve(t, p)
		if code, _, _ := f.get(t, "/"); code != http.StatusGatewayTimeout {
			t.Fatalf("got %d, want 504", code)
		}
		if s := statsOf(t, p, 1, time.Now().Add(-time.Minute), 1); s.Errors != 1 {
			t.Errorf("errors = %d, want 1", s.Errors)
		}
	})
	t.Run("no timeout by default", func(t *testing.T) {
		p := New("chat-api", Options{})
		if s := p.Settings(); s != (Settings{}) || p.rp.FlushInterval != -1 {
			t.Errorf("settings %+v FlushInterval %v, want none and -1", s, p.rp.FlushInterval)
		}
	})
	t.Run("body cut short is an error", func(t *testing.T) {
		up := upstream(t, "cut", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		})
		p := New("chat-api", Options{Logger: quietLogger()})
		p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{up}}}})
		f := serve(t, p)
		resp, err := f.client.Get(f.url + "/")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Error("client read a whole body from a cut response")
		}
		waitFor(t, 5*time.Second, "the cut request to be counted", func() bool {
			return p.Stats(1, time.Now().Add(-time.Minute)).Requests == 1
		})
		if s := p.Stats(1, time.Now().Add(-time.Minute)); s.Errors != 1 || s.Errors5xx != 0 {
			t.Errorf("stats %+v, want 1 error, 0 5xx", s)
		}
	})
}

func TestStats(t *testing.T) {
	up := upstream(t, "fast", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	slow := upstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		time.Sleep(30 * time.Millisecond) // the instance is slow to finish: that is what we measure
		io.WriteString(w, "ok")
	})
	p := New("chat-api", Options{Logger: quietLogger()})
	p.SetTable(Table{Pools: []Pool{
		{Revision: 1, Weight: 100, Backends: []Backend{up}},
		{Revision: 2, Weight: 0, Backends: []Backend{slow}},
	}, HeaderRoutes: []HeaderRoute{{Match: []Match{{Header: "x-slow", Exact: "1"}}, Revision: 2}}})
	f := serve(t, p)
	start := time.Now()
	for i := range 40 {
		path := "/"
		if i%4 == 0 {
			path = "/?fail=1"
		}
		f.get(t, path)
	}
	for range 10 {
		f.get(t, "/", "X-Slow", "1")
	}
	fast, sl := statsOf(t, p, 1, start, 40), statsOf(t, p, 2, start, 10)
	if fast.Requests != 40 || fast.Errors5xx != 10 || fast.Errors != 10 {
		t.Errorf("revision 1: %d requests, %d 5xx, %d errors; want 40, 10, 10", fast.Requests, fast.Errors5xx, fast.Errors)
	}
	if fast.Latency.Count() != 40 || fast.TTFB.Count() != 40 {
		t.Errorf("revision 1 histograms count %d/%d, want 40", fast.Latency.Count(), fast.TTFB.Count())
	}
	if sl.Requests != 10 || sl.Errors != 0 {
		t.Errorf("revision 2: %d requests %d errors, want 10 and 0", sl.Requests, sl.Errors)
	}
	// The median, not the tail, of the fast revision: on a loaded machine a few fast requests
	// can take longer than 30ms too.
	if p50 := sl.Latency.Quantile(0.5); p50 < 30*time.Millisecond || p50 <= fast.Latency.Quantile(0.5) {
		t.Errorf("slow p50 latency %v, fast p50 %v: want slow ≥ 30ms and above fast", p50, fast.Latency.Quantile(0.5))
	}
	if ttfb, lat := sl.TTFB.Quantile(0.5), sl.Latency.Quantile(0.5); ttfb >= lat {
		t.Errorf("slow revision ttfb p50 %v not below latency p50 %v", ttfb, lat)
	}
	if s := p.Stats(99, start); s.Requests != 0 || s.Latency.Count() != 0 || s.Latency.Quantile(0.9) != 0 {
		t.Errorf("unknown revision: %+v", s)
	}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestStatsWindow(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	up := upstream(t, "a", nil)
	p := New("chat-api", Options{Logger: quietLogger(), Clock: clk.Now})
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{up}}}})
	f := serve(t, p)
	t0 := clk.Now()
	for range 5 {
		f.get(t, "/")
	}
	statsOf(t, p, 1, t0, 5)
	clk.Advance(30 * time.Second)
	for range 3 {
		f.get(t, "/")
	}
	statsOf(t, p, 1, t0, 8)
	tests := []struct {
		name    string
		advance time.Duration
		since   time.Time
		want    int64
		window  time.Duration
	}{
		{"all", 0, t0, 8, 30 * time.Second},
		{"last 10s", 0, t0.Add(20 * time.Second), 3, 10 * time.Second},
		{"9 minutes later", 9 * time.Minute, t0, 8, 9*time.Minute + 30*time.Second},
		{"first second aged out", 31 * time.Second, t0, 3, statsWindow - time.Second},
		{"all aged out", 10 * time.Minute, t0, 0, statsWindow - time.Second},
	}
	for _, tc := range tests {
		clk.Advance(tc.advance)
		s := p.Stats(1, tc.since)
		if s.Requests != tc.want || s.Window != tc.window {
			t.Errorf("%s: %d requests over %v, want %d over %v", tc.name, s.Requests, s.Window, tc.want, tc.window)
		}
	}

	// A revision that left the table and has nothing in the window is forgotten, metrics too.
	p.SetTable(Table{Pools: []Pool{{Revision: 2, Weight: 100, Backends: []Backend{up}}}})
	p.mu.Lock()
	_, kept := p.revs[1]
	p.mu.Unlock()
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "revision" && l.GetValue() == "1" {
					t.Errorf("%s still has a series for revision 1", mf.GetName())
				}
			}
		}
	}
	if kept {
		t.Error("revision 1's window is still kept")
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Observe(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}, {0, time.Millisecond}} {
		got := h.Quantile(tc.q)
		if lo, hi := tc.want*85/100, tc.want*115/100; got < lo || got > hi {
			t.Errorf("q%v = %v, want about %v", tc.q, got, tc.want)
		}
	}
	if h.Count() != 1000 || h.Mean() < 499*time.Millisecond || h.Mean() > 502*time.Millisecond {
		t.Errorf("count %d mean %v", h.Count(), h.Mean())
	}
	var big Histogram
	big.Observe(10 * time.Minute)
	big.Observe(50 * time.Microsecond)
	if got := big.Quantile(1); got != 10*time.Minute {
		t.Errorf("beyond the last bound: q1 = %v, want 10m", got)
	}
	if got := big.Quantile(0.1); got != 50*time.Microsecond {
		t.Errorf("below the first bound: q0.1 = %v, want 50µs", got)
	}
	for d := time.Duration(1); d < 20*time.Minute; d = d*3/2 + 1 {
		i := histIndex(d)
		if d > histLower(i) && d <= histUpper(i) || i == histBuckets-1 && d > histMax || i == 0 && d <= histMin {
			continue
		}
		t.Errorf("%v in bucket %d (%v, %v]", d, i, histLower(i), histUpper(i))
	}
}

func TestPreviewHandler(t *testing.T) {
	active, preview := upstream(t, "active", nil), upstream(t, "preview", nil)
	p := New("chat-api", Options{Logger: quietLogger()})
	pools := []Pool{
		{Revision: 1, Role: "active", Weight: 100, Backends: []Backend{active}},
		{Revision: 2, Role: "preview", Weight: 0, Backends: []Backend{preview}},
	}
	p.SetTable(Table{Pools: pools, Preview: 2})
	main, prev := serve(t, p), serve(t, p.PreviewHandler())
	for range 10 {
		if code, body, rev := prev.get(t, "/"); code != http.StatusOK || body != "preview" || rev != "2" {
			t.Fatalf("preview listener: %d %q rev %q", code, body, rev)
		}
		if _, body, _ := main.get(t, "/"); body != "active" {
			t.Fatalf("main listener reached %q", body)
		}
	}
	p.SetTable(Table{Pools: pools})
	if code, _, _ := prev.get(t, "/"); code != http.StatusServiceUnavailable {
		t.Errorf("no preview revision: got %d, want 503", code)
	}
}

func TestForwardedHeaders(t *testing.T) {
	seen := make(chan http.Header, 2)
	up := upstream(t, "a", func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Clone() })
	for _, trust := range []bool{false, true} {
		p := New("chat-api", Options{Logger: quietLogger(), TrustForwardedHeaders: trust})
		p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{up}}}})
		f := serve(t, p)
		f.get(t, "/", "X-Forwarded-For", "10.0.0.1", "X-Forwarded-Host", "chat.example", "Connection", "X-Hop", "X-Hop", "1")
		h := <-seen
		wantFor, wantHost := "127.0.0.1", strings.TrimPrefix(f.url, "http://")
		if trust {
			wantFor, wantHost = "10.0.0.1, 127.0.0.1", "chat.example"
		}
		if h.Get("X-Forwarded-For") != wantFor || h.Get("X-Forwarded-Host") != wantHost || h.Get("X-Forwarded-Proto") != "http" {
			t.Errorf("trust=%v: forwarded for %q host %q proto %q, want %q %q http", trust,
				h.Get("X-Forwarded-For"), h.Get("X-Forwarded-Host"), h.Get("X-Forwarded-Proto"), wantFor, wantHost)
		}
		if h.Get("X-Hop") != "" {
			t.Errorf("hop-by-hop header X-Hop reached the instance")
		}
	}
}

func TestCollector(t *testing.T) {
	up := upstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	reg := prometheus.NewPedanticRegistry()
	var fronts []front
	var proxies []*Proxy
	for _, name := range []string{"chat-api", "other"} {
		p := New(name, Options{Logger: quietLogger()})
		p.SetTable(Table{Pools: []Pool{{Revision: 3, Role: "stable", Weight: 100, Backends: []Backend{up}}}})
		if err := reg.Register(p.Collector()); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		fronts = append(fronts, serve(t, p))
		proxies = append(proxies, p)
	}
	since := time.Now()
	fronts[0].get(t, "/")
	fronts[0].get(t, "/")
	fronts[0].get(t, "/fail")
	fronts[1].get(t, "/")
	statsOf(t, proxies[0], 3, since, 3)
	statsOf(t, proxies[1], 3, since, 1)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var text bytes.Buffer
	enc := expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	parsed, err := parser.TextToMetricFamilies(bytes.NewReader(text.Bytes()))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, text.String())
	}
	for _, name := range []string{"ramp_requests_total", "ramp_request_duration_seconds", "ramp_ttfb_seconds", "ramp_time_to_first_token_seconds", "ramp_requests_in_flight"} {
		if parsed[name] == nil {
			t.Errorf("%s missing from\n%s", name, text.String())
		}
	}
	counts := map[string]float64{}
	for _, m := range parsed["ramp_requests_total"].GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		counts[l["rollout"]+"/"+l["revision"]+"/"+l["role"]+"/"+l["code_class"]] = m.GetCounter().GetValue()
	}
	want := map[string]float64{"chat-api/3/stable/2xx": 2, "chat-api/3/stable/5xx": 1, "other/3/stable/2xx": 1}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("ramp_requests_total{%s} = %v, want %v (all: %v)", k, counts[k], v, counts)
		}
	}
	for _, m := range parsed["ramp_request_duration_seconds"].GetMetric() {
		if len(m.GetLabel()) != 3 {
			t.Errorf("duration labels %v, want rollout, revision, role", m.GetLabel())
		}
	}
}

// A request that began before a table change (its body still coming in) is routed by the
// new table: the instances that left the old one are drained by nobody (WaitIdle knows them
// no more), and their process may stop at once. Before, such a request went to a removed
// instance after its drain had returned.
func TestRequestReadDuringATableChangeGoesByTheNewTable(t *testing.T) {
	old := upstream(t, "old", nil)
	cur := upstream(t, "new", nil)
	// The proxy reads its clock when it takes a request (and loads the table), then reads
	// the body.
	taken := make(chan struct{})
	var once sync.Once
	p := New("chat-api", Options{Logger: quietLogger(), Clock: func() time.Time {
		once.Do(func() { close(taken) })
		return time.Now()
	}})
	p.SetTable(Table{Pools: []Pool{{Revision: 2, Weight: 100, Backends: []Backend{old}}}})
	f := serve(t, p)

	pr, pw := io.Pipe()
	got := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, f.url+"/chat", pr)
		req.ContentLength = 4
		resp, err := f.client.Do(req)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	if _, err := pw.Write([]byte("he")); err != nil { // the head and half the body are in
		t.Fatal(err)
	}
	select {
	case <-taken:
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not take the request")
	}
	// The table changes and the old instance is drained while the body is still coming.
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{cur}}}})
	p.Drain("old")
	if err := p.WaitIdle(context.Background(), "old"); err != nil {
		t.Fatal(err)
	}
	pw.Write([]byte("ll"))
	pw.Close()
	select {
	case g := <-got:
		if g != "new" {
			t.Fatalf("the request read across the table change was answered by %q, want the new table's instance", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
}
