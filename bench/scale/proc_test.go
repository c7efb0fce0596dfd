package main

import (
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	// A command name holding a space and a parenthesis, as a process may name itself.
	line := "4242 (ramp (x) y) S 1 4242 4242 0 -1 4194560 1500 0 0 0 731 215 0 0 20 0 9 0 123 1000 2000 18446744073709551615\n"
	s, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if s.comm != "ramp (x) y" || s.state != 'S' || s.ppid != 1 || s.utime != 731 || s.stime != 215 || s.threads != 9 {
		t.Errorf("parseStat = %+v; want comm %q, state S, ppid 1, utime 731, stime 215, threads 9", s, "ramp (x) y")
	}
	for _, bad := range []string{"", "4242 ramp S 1", "4242 (ramp) S 1 2 3"} {
		if _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestReadStatSelf(t *testing.T) {
	s, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.ppid != os.Getppid() || s.threads < 1 {
		t.Errorf("readStat(self) = %+v; want ppid %d and at least one thread", s, os.Getppid())
	}
	m, err := readMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.rss <= 0 || m.hwm < m.rss {
		t.Errorf("readMem(self) = %+v; want 0 < rss <= hwm", m)
	}
}

func TestParseStatus(t *testing.T) {
	m, err := parseStatus("Name:\tramp\nVmHWM:\t  81234 kB\nVmRSS:\t   70000 kB\nThreads:\t9\n")
	if err != nil {
		t.Fatal(err)
	}
	if m.rss != 70000*1024 || m.hwm != 81234*1024 {
		t.Errorf("parseStatus = %+v; want rss %d, hwm %d", m, 70000*1024, 81234*1024)
	}
	if _, err := parseStatus("Name:\tramp\nVmRSS:\t1 kB\n"); err == nil {
		t.Error("parseStatus without VmHWM: no error")
	}
	if _, err := parseStatus("VmHWM:\t1 kB\nVmRSS:\t1 MB\n"); err == nil {
		t.Error("parseStatus with a size in MB: no error")
	}
}

func TestMetrics(t *testing.T) {
	text := `# HELP rest_client_requests_total Number of HTTP requests.
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="GET"} 12
rest_client_requests_total{code="201",host="127.0.0.1:6443",method="POST"} 3
rest_client_requests_total{code="409",host="127.0.0.1:6443",method="PUT"} 1
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PUT"} 5
ramp_reconcile_duration_seconds_count{mode="local"} 600
go_goroutines 609
`
	ss, err := parseMetrics(text)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"rest_client_requests_total", nil, 21},
		{"rest_client_requests_total", []string{`method="PUT"`}, 6},
		{"rest_client_requests_total", []string{`method="PUT"`, `code="409"`}, 1},
		{"ramp_reconcile_duration_seconds_count", []string{`mode="local"`}, 600},
		{"ramp_reconcile_duration_seconds_count", []string{`mode="kubernetes"`}, 0},
		{"go_goroutines", nil, 609},
	} {
		if got := sumMetric(ss, tc.name, tc.labels...); got != tc.want {
			t.Errorf("sumMetric(%s, %v) = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	got := labelValues(ss, "rest_client_requests_total", "method")
	if len(got) != 3 || got[0] != "GET" || got[1] != "POST" || got[2] != "PUT" {
		t.Errorf("labelValues(method) = %v, want [GET POST PUT]", got)
	}
	if _, err := parseMetrics("x{a=\"b\" 1\n"); err == nil {
		t.Error("parseMetrics with unclosed labels: no error")
	}
	if _, err := parseMetrics("x one\n"); err == nil {
		t.Error("parseMetrics with a word for a value: no error")
	}
}
