// Command proxy is the side-by-side proxy benchmark: nginx, HAProxy, a plain Go
// httputil.ReverseProxy and ramp's proxy, each splitting traffic 90/10 between two upstreams
// ("stable" and "canary") with one header route, plus a direct-to-upstream baseline.
//
// The server side (proxies and upstreams) is pinned to CPU 0 with taskset and the load
// generators to CPU 1. Each round measures, for every target in turn (the order rotates
// from round to round): the maximum throughput with wrk (closed loop), and p50/p99 at a
// constant 2k and 5k requests per second with bench/loadgen (open loop, latency from each
// request's intended send time), and the proxy's CPU time per request over the 5k run
// (utime+stime from /proc/<pid>/stat of the proxy and its child processes).
//
// Run it with bench/proxy/run.sh, which installs nginx, haproxy and wrk from Debian first.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

const (
	stableAddr = "127.0.0.1:19001"
	canaryAddr = "127.0.0.1:19002"
)

type target struct {
	name string
	addr string
	cmd  *exec.Cmd
}

type result struct {
	rps              float64
	p50at2k, p99at2k time.Duration
	p50at5k, p99at5k time.Duration
	failed           int
	cpuPerReq        time.Duration // at 5k; 0 for direct
}

var (
	rounds    = flag.Int("rounds", 5, "interleaved rounds")
	wrkDur    = flag.Duration("wrk", 5*time.Second, "wrk run length")
	wrkConns  = flag.Int("conns", 64, "wrk connections")
	openDur   = flag.Duration("open", 5*time.Second, "each open-loop run's length (after 1s warm-up)")
	serverCPU = flag.String("server-cpu", "0", "CPU list for proxies and upstreams")
	loadCPU   = flag.String("load-cpu", "1", "CPU list for the load generators")
	profile   = flag.String("cpuprofile", "", "write ramp's CPU profile here at the end")
	only      = flag.String("only", "", "comma-separated targets to run (default all)")
	baseline  = flag.String("baseline", "", "a git revision: also run ramp's proxy as built at it (target ramp@REV), to compare a change in the same run")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	dir, err := os.MkdirTemp("", "ramp-bench-proxy-")
	check(err)
	defer os.RemoveAll(dir)
	bin := func(name string) string { return filepath.Join(dir, name) }
	for _, b := range []string{"upstream", "proxyd", "loadgen"} {
		out, err := exec.Command("go", "build", "-o", bin(b), "./bench/"+b).CombinedOutput()
		if err != nil {
			fatalf("go build ./bench/%s: %v\n%s", b, err, out)
		}
	}
	if *baseline != "" {
		buildBaseline(*baseline, bin("proxyd-baseline"))
	}
	defer stopAll()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		stopAll()
		os.Exit(1)
	}()
	start := func(name string, args ...string) *exec.Cmd {
		c := exec.Command("taskset", append([]string{"-c", *serverCPU, name}, args...)...)
		c.Stderr = os.Stderr
		check(c.Start())
		procsMu.Lock()
		procs = append(procs, c)
		procsMu.Unlock()
		return c
	}
	start(bin("upstream"), "-addr", stableAddr, "-name", "stable")
	start(bin("upstream"), "-addr", canaryAddr, "-name", "canary")

	check(os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(fmt.Sprintf(nginxConf, dir, dir, dir, dir, dir, dir, stableAddr, canaryAddr)), 0o644))
	check(os.WriteFile(filepath.Join(dir, "haproxy.cfg"), []byte(fmt.Sprintf(haproxyCfg, stableAddr, canaryAddr)), 0o644))
	rampArgs := []string{"-kind", "ramp", "-listen", "127.0.0.1:18084", "-stable", stableAddr, "-canary", canaryAddr}
	if *profile != "" {
		p, err := filepath.Abs(*profile)
		check(err)
		rampArgs = append(rampArgs, "-cpuprofile", p)
	}
	all := []*target{
		{name: "direct", addr: stableAddr},
		{name: "nginx", addr: "127.0.0.1:18081", cmd: start("nginx", "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")},
		{name: "haproxy", addr: "127.0.0.1:18082", cmd: start("haproxy", "-db", "-f", filepath.Join(dir, "haproxy.cfg"))},
		{name: "goproxy", addr: "127.0.0.1:18083", cmd: start(bin("proxyd"), "-kind", "goproxy", "-listen", "127.0.0.1:18083", "-stable", stableAddr, "-canary", canaryAddr)},
		{name: "ramp", addr: "127.0.0.1:18084", cmd: start(bin("proxyd"), rampArgs...)},
		// ramp's proxy behind net/http's server instead of the fast server, for comparison.
		{name: "ramp-nethttp", addr: "127.0.0.1:18085", cmd: start(bin("proxyd"), "-kind", "ramp", "-nethttp", "-listen", "127.0.0.1:18085", "-stable", stableAddr, "-canary", canaryAddr)},
	}
	if *baseline != "" {
		all = append(all, &target{name: "ramp@" + *baseline, addr: "127.0.0.1:18086",
			cmd: start(bin("proxyd-baseline"), "-kind", "ramp", "-listen", "127.0.0.1:18086", "-stable", stableAddr, "-canary", canaryAddr)})
	}
	var targets []*target
	for _, t := range all {
		if *only == "" || slices.Contains(strings.Split(*only, ","), t.name) || t.name == "direct" {
			targets = append(targets, t)
		}
	}
	for _, t := range targets {
		waitUp(t.addr)
	}
	// Check the split and the header route once.
	for _, t := range targets[1:] {
		out, err := exec.Command("curl", "-s", "-H", "x-version: canary", "http://"+t.addr+"/").Output()
		if err != nil || !strings.Contains(string(out), "canary") {
			fatalf("%s: header route x-version: canary did not reach the canary: %q %v", t.name, out, err)
		}
	}

	res := map[string][]result{}
	for r := range *rounds {
		order := slices.Clone(targets)
		k := r % len(order)
		order = append(order[k:], order[:k]...)
		for _, t := range order {
			x := measure(bin("loadgen"), t)
			res[t.name] = append(res[t.name], x)
			log.Printf("round %d %-8s rps %8.0f  2k p50/p99 %6.0f/%6.0fµs  5k p50/p99 %6.0f/%6.0fµs  cpu/req %5.1fµs  failed %d",
				r+1, t.name, x.rps, us(x.p50at2k), us(x.p99at2k), us(x.p50at5k), us(x.p99at5k), us(x.cpuPerReq), x.failed)
		}
	}
	report(targets, res)
}

// buildBaseline builds bench/proxyd as it was at git revision rev into out, from a
// temporary worktree.
func buildBaseline(rev, out string) {
	wt, err := os.MkdirTemp("", "ramp-baseline-")
	check(err)
	defer func() {
		exec.Command("git", "worktree", "remove", "--force", wt).Run()
		os.RemoveAll(wt)
	}()
	if b, err := exec.Command("git", "worktree", "add", "--detach", wt, rev).CombinedOutput(); err != nil {
		fatalf("-baseline %s: git worktree add: %v\n%s", rev, err, b)
	}
	c := exec.Command("go", "build", "-o", out, "./bench/proxyd")
	c.Dir = wt
	if b, err := c.CombinedOutput(); err != nil {
		fatalf("-baseline %s: go build ./bench/proxyd: %v\n%s", rev, err, b)
	}
}

func measure(loadgen string, t *target) result {
	var x result
	out := run("taskset", "-c", *loadCPU, "wrk", "-t1", "-c"+strconv.Itoa(*wrkConns), "-d"+strconv.Itoa(int(wrkDur.Seconds()))+"s", "http://"+t.addr+"/")
	m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		fatalf("wrk %s: no Requests/sec in\n%s", t.name, out)
	}
	x.rps, _ = strconv.ParseFloat(m[1], 64)
	open := func(rate int) (p50, p99 time.Duration, failed, n int) {
		out := run("taskset", "-c", *loadCPU, loadgen, "-url", "http://"+t.addr+"/", "-rate", strconv.Itoa(rate), "-duration", openDur.String())
		var v map[string]int64
		check(json.Unmarshal([]byte(out), &v))
		return time.Duration(v["p50_us"]) * time.Microsecond, time.Duration(v["p99_us"]) * time.Microsecond, int(v["failed"]), int(v["requests"])
	}
	var f int
	x.p50at2k, x.p99at2k, f, _ = open(2000)
	x.failed += f
	var before time.Duration
	if t.cmd != nil {
		before = cpuTime(t.cmd.Process.Pid)
	}
	// The CPU delta covers the 1s warm-up too, so count its requests.
	var n int
	x.p50at5k, x.p99at5k, f, n = open(5000)
	x.failed += f
	if t.cmd != nil {
		x.cpuPerReq = (cpuTime(t.cmd.Process.Pid) - before) / time.Duration(n+5000)
	}
	return x
}

func run(name string, args ...string) string {
	out, err := exec.CommandContext(context.Background(), name, args...).Output()
	if err != nil {
		fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// cpuTime is the user+system time of pid and its children (nginx's worker).
func cpuTime(pid int) time.Duration {
	tck := time.Second / 100 // USER_HZ
	total := time.Duration(0)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// f[0] is state (field 3); ppid is field 4, utime 14, stime 15.
		ppid, _ := strconv.Atoi(f[1])
		if p != pid && ppid != pid {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(u+st) * tck
	}
	return total
}

func waitUp(addr string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if exec.Command("curl", "-sf", "-o", "/dev/null", "http://"+addr+"/").Run() == nil {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling a process we started; no channel to wait on
	}
	fatalf("%s did not answer within 10s", addr)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func report(targets []*target, res map[string][]result) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(os.Stdout, "\n## Per target, median of rounds (latency in µs from intended send time; added = minus direct)")
	fmt.Fprintln(w, "target\trps\t2k p50\t2k p99\t5k p50\t5k p99\tadded p50@5k\tadded p99@5k\tcpu µs/req\tfailed\t")
	d := res["direct"]
	for _, t := range targets {
		rs := res[t.name]
		col := func(f func(i int, r result) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(i, r)
			}
			return median(v)
		}
		failed := 0
		for _, r := range rs {
			failed += r.failed
		}
		fmt.Fprintf(w, "%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%d\t\n", t.name,
			col(func(_ int, r result) float64 { return r.rps }),
			col(func(_ int, r result) float64 { return us(r.p50at2k) }),
			col(func(_ int, r result) float64 { return us(r.p99at2k) }),
			col(func(_ int, r result) float64 { return us(r.p50at5k) }),
			col(func(_ int, r result) float64 { return us(r.p99at5k) }),
			col(func(i int, r result) float64 { return us(r.p50at5k - d[i].p50at5k) }),
			col(func(i int, r result) float64 { return us(r.p99at5k - d[i].p99at5k) }),
			col(func(_ int, r result) float64 { return us(r.cpuPerReq) }),
			failed)
	}
	w.Flush()
	ramp := res["ramp"]
	if ramp == nil {
		return
	}
	for _, peer := range []string{"nginx", "haproxy"} {
		pr := res[peer]
		if pr == nil {
			continue
		}
		fmt.Printf("\n## ramp/%s per round (throughput, CPU/request; added p99 at 5k: ramp − %s in µs, ≤ 0 meets the target)\n", peer, peer)
		fmt.Fprintln(w, "round\tthroughput\tcpu/req\tramp added p50@5k µs\tramp added p99@5k µs\tpeer added p99@5k µs\t")
		var tp, cpu, ap50, ap99, pp99 []float64
		for i := range ramp {
			tp = append(tp, ramp[i].rps/pr[i].rps)
			cpu = append(cpu, float64(ramp[i].cpuPerReq)/float64(max(pr[i].cpuPerReq, 1)))
			ap50 = append(ap50, us(ramp[i].p50at5k-d[i].p50at5k))
			ap99 = append(ap99, us(ramp[i].p99at5k-d[i].p99at5k))
			pp99 = append(pp99, us(pr[i].p99at5k-d[i].p99at5k))
			fmt.Fprintf(w, "%d\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t\n", i+1, tp[i], cpu[i], ap50[i], ap99[i], pp99[i])
		}
		fmt.Fprintf(w, "median\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t\n", median(tp), median(cpu), median(ap50), median(ap99), median(pp99))
		w.Flush()
	}
}

var (
	procsMu sync.Mutex
	procs   []*exec.Cmd
)

// stopAll stops the processes this benchmark started (SIGTERM, so ramp writes its profile).
func stopAll() {
	procsMu.Lock()
	defer procsMu.Unlock()
	for _, c := range procs {
		c.Process.Signal(syscall.SIGTERM)
		c.Wait()
	}
	procs = nil
}

func fatalf(format string, args ...any) {
	stopAll()
	log.Fatalf(format, args...)
}

func check(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

const nginxConf = `
worker_processes 1;
pid %s/nginx.pid;
error_log %s/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %s/nginx-body;
    proxy_temp_path %s/nginx-proxy;
    fastcgi_temp_path %s/nginx-fastcgi;
    uwsgi_temp_path %s/nginx-uwsgi;
    scgi_temp_path /tmp;
    upstream stable { server %s; keepalive 256; }
    upstream canary { server %s; keepalive 256; }
    split_clients "${request_id}" $split { 90%% stable; * canary; }
    map $http_x_version $pool { canary canary; default $split; }
    server {
        listen 127.0.0.1:18081 reuseport;
        keepalive_requests 1000000;
        location / {
            proxy_pass http://$pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`

const haproxyCfg = `
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:18082
    use_backend canary if { req.hdr(x-version) -m str canary }
    default_backend split
backend split
    balance random
    server stable %[1]s weight 90
    server canary %[2]s weight 10
backend canary
    server canary %[2]s
`
