package proxy

import (
	"bufio"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// An SSE answer sends its headers at once and its first event later: the time to the first
// token (the first body byte) shows the delay, the time to the headers does not. Both the
// fast path and the ReverseProxy path measure it.
func TestFirstTokenIsTheFirstBodyByteNotTheHeaders(t *testing.T) {
	const delay = 300 * time.Millisecond
	for _, path := range []struct {
		name     string
		settings Settings
	}{
		{"fast path", Settings{}},
		{"ReverseProxy", Settings{DisableFastPath: true}},
	} {
		t.Run(path.name, func(t *testing.T) {
			up := upstream(t, "sse", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				time.Sleep(delay) // the model thinks before its first token
				w.Write([]byte("data: hello\n\n"))
				w.(http.Flusher).Flush()
				w.Write([]byte("data: [DONE]\n\n"))
			})
			p := New("chat-api", Options{Logger: quietLogger()})
			p.SetSettings(path.settings)
			p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{up}}}})
			f := serve(t, p)
			since := time.Now()
			resp, err := f.client.Get(f.url + "/v1/chat")
			if err != nil {
				t.Fatal(err)
			}
			gotHeaders := time.Since(since)
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			resp.Body.Close()
			if err != nil || !strings.HasPrefix(line, "data: hello") {
				t.Fatalf("first line %q, %v", line, err)
			}
			if gotHeaders > delay/2 {
				t.Fatalf("the client got the headers after %v: the proxy held them back", gotHeaders)
			}
			s := statsOf(t, p, 1, since, 1)
			if s.FirstToken.Count() != 1 {
				t.Fatalf("first-token count %d, want 1", s.FirstToken.Count())
			}
			if ft := s.FirstToken.Quantile(0.95); ft < delay*8/10 || ft > 10*delay {
				t.Errorf("first token p95 %v, want about %v", ft, delay)
			}
			if ttfb := s.TTFB.Quantile(0.95); ttfb > delay/2 {
				t.Errorf("ttfb (headers) p95 %v, want well under %v", ttfb, delay)
			}
			secs := p.Seconds(1, since.Unix(), time.Now().Unix(), Thresholds{FirstToken: delay / 2, TTFB: delay / 2})
			var slowFirst, slowTTFB int64
			for _, sec := range secs {
				slowFirst += sec.SlowFirstToken
				slowTTFB += sec.SlowTTFB
			}
			if slowFirst != 1 || slowTTFB != 0 {
				t.Errorf("slow first tokens %d, slow headers %d, want 1 and 0", slowFirst, slowTTFB)
			}
		})
	}
}

// Requests that hang are counted while in flight, by the second they arrived: still open,
// and still waiting for their first token when no body byte went out. Both proxy paths count.
func TestArrivalsCountHangingRequests(t *testing.T) {
	for _, path := range []struct {
		name     string
		settings Settings
	}{
		{"fast path", Settings{}},
		{"ReverseProxy", Settings{DisableFastPath: true}},
	} {
		t.Run(path.name, func(t *testing.T) {
			clk := &fakeClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
			release := make(chan struct{})
			up := upstream(t, "hang", func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("quick") != "" {
					io.WriteString(w, "ok")
					return
				}
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(http.StatusOK)
				if r.URL.Query().Get("token") != "" {
					w.Write([]byte("data: thinking\n\n"))
				}
				w.(http.Flusher).Flush()
				select { // the model never answers
				case <-release:
				case <-r.Context().Done():
				}
			})
			t.Cleanup(func() { close(release) })
			p := New("chat-api", Options{Logger: quietLogger(), Clock: clk.Now})
			p.SetSettings(path.settings)
			p.SetTable(Table{Pools: []Pool{{Revision: 2, Weight: 100, Backends: []Backend{up}}}})
			f := serve(t, p)
			t0 := clk.Now().Unix()
			f.get(t, "/?quick=1")
			var bodies []io.ReadCloser
			t.Cleanup(func() {
				for _, b := range bodies {
					b.Close()
				}
			})
			open := func(q string) {
				resp, err := f.client.Get(f.url + "/v1/chat" + q)
				if err != nil {
					t.Fatal(err)
				}
				bodies = append(bodies, resp.Body)
			}
			open("")
			clk.Advance(time.Second)
			open("")
			open("?token=1")
			// The proxy counts the third request's first token as it sends it on: wait for it.
			waitFor(t, 5*time.Second, "3 requests in flight, 2 without a first token", func() bool {
				o, w := p.InFlightRequests(2)
				return o == 3 && w == 2
			})
			want := []ArrivalSecond{
				{Unix: t0, Arrived: 2, Open: 1, Waiting: 1},
				{Unix: t0 + 1, Arrived: 2, Open: 2, Waiting: 1},
			}
			if got := p.Arrivals(2, t0, t0+5); !slices.Equal(got, want) {
				t.Fatalf("Arrivals = %+v, want %+v", got, want)
			}
			if got := p.Arrivals(2, t0+1, t0+1); !slices.Equal(got, want[1:]) {
				t.Fatalf("Arrivals of one second = %+v, want %+v", got, want[1:])
			}
			if got := p.Arrivals(7, t0, t0+5); got != nil {
				t.Fatalf("unknown revision: %+v", got)
			}
			// The clients give up: nothing is in flight any more; the arrivals stay counted.
			for _, b := range bodies {
				b.Close()
			}
			bodies = nil
			waitFor(t, 5*time.Second, "no request in flight", func() bool {
				o, w := p.InFlightRequests(2)
				return o == 0 && w == 0
			})
			want = []ArrivalSecond{{Unix: t0, Arrived: 2}, {Unix: t0 + 1, Arrived: 2}}
			if got := p.Arrivals(2, t0, t0+5); !slices.Equal(got, want) {
				t.Fatalf("after: Arrivals = %+v, want %+v", got, want)
			}
		})
	}
}
