package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every Linux
// architecture Go supports (the kernel converts to it whatever its own HZ).
const clockTicks = 100

// procStat is what the bench reads of /proc/PID/stat.
type procStat struct {
	state        byte
	ppid         int
	utime, stime uint64 // clock ticks, all threads
	threads      int
	comm         string
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(b))
}

// parseStat parses a /proc/PID/stat line. The command name, in parentheses, may itself
// hold spaces and parentheses: the fields start after the last ')'.
func parseStat(s string) (procStat, error) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("/proc stat %q: no command name in parentheses", s)
	}
	f := strings.Fields(s[end+1:])
	// f[0] is field 3 (state); utime is field 14, stime 15, num_threads 20.
	if len(f) < 18 {
		return procStat{}, fmt.Errorf("/proc stat %q: %d fields after the name, want at least 18", s, len(f))
	}
	var p procStat
	p.comm = s[open+1 : end]
	p.state = f[0][0]
	var err error
	if p.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("/proc stat ppid %q: %w", f[1], err)
	}
	if p.utime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("/proc stat utime %q: %w", f[11], err)
	}
	if p.stime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("/proc stat stime %q: %w", f[12], err)
	}
	if p.threads, err = strconv.Atoi(f[17]); err != nil {
		return procStat{}, fmt.Errorf("/proc stat num_threads %q: %w", f[17], err)
	}
	return p, nil
}

type procMem struct{ rss, hwm int64 } // bytes

func readMem(pid int) (procMem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, err
	}
	return parseStatus(string(b))
}

// parseStatus reads VmRSS and VmHWM (in kB) of a /proc/PID/status file.
func parseStatus(s string) (procMem, error) {
	var m procMem
	found := 0
	for line := range strings.Lines(s) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return procMem{}, fmt.Errorf("/proc status %s: %q is not a size in kB", name, strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return procMem{}, fmt.Errorf("/proc status %s: %w", name, err)
		}
		if name == "VmRSS" {
			m.rss = kb * 1024
		} else {
			m.hwm = kb * 1024
		}
		found++
	}
	if found != 2 {
		return procMem{}, fmt.Errorf("/proc status: VmRSS or VmHWM missing")
	}
	return m, nil
}

// children returns the direct children of pid by command name.
func children(pid int) map[string]int {
	out := map[string]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := readStat(p); err == nil && s.ppid == pid {
			out[s.comm] = p
		}
	}
	return out
}

// sample is one series of the Prometheus text format.
type sample struct {
	name   string
	labels string // as written between the braces
	value  float64
}

// parseMetrics reads the Prometheus text format: enough of it for counters and histograms'
// _count series (no escaped quotes or braces inside label values are needed here).
func parseMetrics(text string) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		var s sample
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("metrics line %q: unclosed labels", line)
			}
			s.name, s.labels, rest = line[:i], line[i+1:j], line[j+1:]
		} else {
			name, r, ok := strings.Cut(line, " ")
			if !ok {
				return nil, fmt.Errorf("metrics line %q: no value", line)
			}
			s.name, rest = name, r
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: value: %w", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// sumMetric adds the values of the series named name whose labels hold every one of want
// (each written as `key="value"`).
func sumMetric(ss []sample, name string, want ...string) float64 {
	var sum float64
	for _, s := range ss {
		if s.name != name {
			continue
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(","+s.labels+",", ","+w+",") {
				ok = false
			}
		}
		if ok {
			sum += s.value
		}
	}
	return sum
}

// labelValues returns the values label takes among the series named name.
func labelValues(ss []sample, name, label string) []string {
	seen := map[string]bool{}
	for _, s := range ss {
		if s.name != name {
			continue
		}
		for kv := range strings.SplitSeq(s.labels, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if ok && k == label {
				seen[strings.Trim(v, `"`)] = true
			}
		}
	}
	return sortedKeys(seen)
}

func fetchMetrics(url string) ([]sample, error) {
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&b); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseMetrics(b.String())
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
