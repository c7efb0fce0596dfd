// Command proxyd runs one of the benchmark's Go proxies in front of two upstreams:
//
//   - ramp: ramp's own proxy (internal/proxy, used directly as local mode does) with a 90/10
//     canary and a header route x-version: canary → canary;
//
//   - goproxy: a plain net/http/httputil.ReverseProxy with a large idle pool, 90/10 at random
//     and the same header route.
//
//     go run ./bench/proxyd -kind ramp [-nethttp] -listen 127.0.0.1:8080 -stable 127.0.0.1:9001 -canary 127.0.0.1:9002
//
// With -cpuprofile it writes a CPU profile when it gets SIGTERM or SIGINT.
package main

import (
	"flag"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"ramp.dev/ramp/internal/proxy"
)

func main() {
	kind := flag.String("kind", "ramp", "ramp or goproxy")
	netHTTP := flag.Bool("nethttp", false, "ramp: serve with net/http's server (Settings.DisableFastServer)")
	listen := flag.String("listen", "127.0.0.1:8080", "listen address")
	stable := flag.String("stable", "127.0.0.1:9001", "stable upstream host:port")
	canary := flag.String("canary", "127.0.0.1:9002", "canary upstream host:port")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here on SIGTERM")
	flag.Parse()

	var h http.Handler
	var srv *proxy.Server
	switch *kind {
	case "ramp":
		p := proxy.New("bench", proxy.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		p.SetTable(proxy.Table{
			Pools: []proxy.Pool{
				{Revision: 1, Role: "stable", Weight: 90, Backends: []proxy.Backend{{ID: "stable-0", Addr: *stable}}},
				{Revision: 2, Role: "canary", Weight: 10, Backends: []proxy.Backend{{ID: "canary-0", Addr: *canary}}},
			},
			HeaderRoutes: []proxy.HeaderRoute{{
				Name:     "canary-header",
				Match:    []proxy.Match{{Header: "x-version", Exact: "canary"}},
				Revision: 2,
			}},
		})
		p.SetSettings(proxy.Settings{DisableFastServer: *netHTTP})
		h = p
		// As local mode serves it: the fast server for plain HTTP/1.1, net/http for the rest.
		srv = proxy.NewServer(p, proxy.ServerConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	case "goproxy":
		s := &url.URL{Scheme: "http", Host: *stable}
		c := &url.URL{Scheme: "http", Host: *canary}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 1024
		h = &httputil.ReverseProxy{
			Transport: tr,
			Rewrite: func(pr *httputil.ProxyRequest) {
				if pr.In.Header.Get("X-Version") == "canary" || rand.IntN(100) < 10 {
					pr.SetURL(c)
				} else {
					pr.SetURL(s)
				}
			},
		}
	default:
		log.Fatalf("proxyd: -kind %q: want ramp or goproxy", *kind)
	}

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		go func() {
			<-sig
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(0)
		}()
	}
	if srv != nil {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			log.Fatal(err)
		}
		log.Fatal(proxy.Serve(srv, ln))
	}
	log.Fatal(http.ListenAndServe(*listen, h))
}
