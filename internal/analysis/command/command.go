// Package command is the analysis provider that runs a program (local mode), such as a smoke
// test or a test suite against the preview or the canary: exit status 0 is the result 1,
// any other status the result 0. The program learns what it tests from its environment.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
)

// DefaultTimeout bounds a run when the metric sets no timeout.
const DefaultTimeout = 10 * time.Minute

// Environment variables the program gets.
const (
	EnvRollout          = "RAMP_ROLLOUT"
	EnvRevision         = "RAMP_REVISION"
	EnvBaselineRevision = "RAMP_BASELINE_REVISION"
	EnvRole             = "RAMP_ROLE"
	// EnvAddr is the rollout's listen address (host:port), where its traffic arrives.
	EnvAddr = "RAMP_ADDR"
	// EnvPreviewAddr is the blueGreen preview address (host:port); empty when none.
	EnvPreviewAddr = "RAMP_PREVIEW_ADDR"
	// EnvInstances lists the ready instances of the revision under analysis, host:port,
	// comma-separated: the way to reach a canary directly.
	EnvInstances = "RAMP_INSTANCES"
)

// outputLines is how many of the last output lines a failed run reports.
const outputLines = 5

// Source tells the program where to reach what it tests.
type Source interface {
	// Addresses returns the rollout's listen address and its preview address (empty when
	// it has none).
	Addresses(rollout string) (listen, preview string)
	// Instances returns the addresses (host:port) of the revision's ready instances.
	Instances(rollout string, revision int64) []string
}

// Provider runs command metrics. It implements analysis.Provider.
type Provider struct {
	src Source
}

var _ analysis.Provider = (*Provider)(nil)

// New returns a provider whose programs learn addresses from src. A nil src means the
// address variables are empty.
func New(src Source) *Provider { return &Provider{src: src} }

// Measure runs the program and waits for it. Exit status 0 is the result 1; another status
// is the result 0, described with the last lines of the program's output. A program that
// cannot be started or runs past its timeout (it is killed, with its process group) is an
// error.
func (p *Provider) Measure(ctx context.Context, m v1alpha1.Metric, t analysis.Target) (analysis.Value, error) {
	c := m.Provider.Command
	if c == nil {
		return analysis.Value{}, fmt.Errorf("metric %q has no command provider", m.Name)
	}
	timeout := DefaultTimeout
	if c.Timeout != nil {
		var err error
		if timeout, err = analysis.Duration(c.Timeout); err != nil {
			return analysis.Value{}, fmt.Errorf("timeout: %w", err)
		}
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		var err error
		if args[i], err = analysis.Expand(a, &m, t); err != nil {
			return analysis.Value{}, fmt.Errorf("args[%d]: %w", i, err)
		}
	}

	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, c.Command, args...)
	cmd.Dir = c.WorkingDir
	cmd.Env = append(os.Environ(), p.env(t)...)
	for _, e := range c.Env {
		cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
	}
	out := &tail{}
	cmd.Stdout, cmd.Stderr = out, out
	// A test suite starts children: stop the whole process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return analysis.Value{Result: 1, Text: fmt.Sprintf("1 (exit status 0 in %s)", took)}, nil
	case ctx.Err() != nil:
		return analysis.Value{}, ctx.Err()
	case runCtx.Err() != nil:
		return analysis.Value{}, fmt.Errorf("%s: killed after the timeout of %s%s", c.Command, timeout, out.describe())
	case errors.As(err, &exit) && exit.Exited():
		return analysis.Value{Result: 0, Text: fmt.Sprintf("0 (exit status %d in %s%s)", exit.ExitCode(), took, out.describe())}, nil
	case errors.As(err, &exit):
		return analysis.Value{Result: 0, Text: fmt.Sprintf("0 (%s in %s%s)", exit.ProcessState, took, out.describe())}, nil
	default:
		return analysis.Value{}, fmt.Errorf("run %s: %w", c.Command, err)
	}
}

// env is what the program learns about its target.
func (p *Provider) env(t analysis.Target) []string {
	var listen, preview string
	var instances []string
	if p.src != nil {
		listen, preview = p.src.Addresses(t.Rollout)
		instances = p.src.Instances(t.Rollout, t.Revision)
	}
	return []string{
		EnvRollout + "=" + t.Rollout,
		EnvRevision + "=" + strconv.FormatInt(t.Revision, 10),
		EnvBaselineRevision + "=" + strconv.FormatInt(t.Baseline, 10),
		EnvRole + "=" + t.Role,
		EnvAddr + "=" + listen,
		EnvPreviewAddr + "=" + preview,
		EnvInstances + "=" + strings.Join(instances, ","),
	}
}

// tail keeps the end of a program's combined output.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const keepBytes = 16 << 10

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > 2*keepBytes {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-keepBytes:]...)
	}
	return len(b), nil
}

// describe is "; output: line | line" with the last non-empty lines, or "" for no output.
func (t *tail) describe() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lines []string
	for _, l := range bytes.Split(t.buf, []byte("\n")) {
		if s := strings.TrimSpace(string(l)); s != "" {
			lines = append(lines, s)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	if len(lines) > outputLines {
		lines = lines[len(lines)-outputLines:]
	}
	s := strings.Join(lines, " | ")
	if len(s) > 500 {
		s = "…" + s[len(s)-500:]
	}
	return "; output: " + s
}
