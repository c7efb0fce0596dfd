package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/local"
	"ramp.dev/ramp/internal/server"
)

func (a *app) demoCmd() *cobra.Command {
	var file, chatAPI string
	var rps int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Roll out the sample chat-api twice: a good model, then a bad one rolled back by itself",
		Long: `Run local mode in-process with a fresh state directory, serve the sample chat-api from FILE
under steady chat traffic, then roll out two new model versions through the file's canary:
a healthy one that becomes stable, and one that answers 30% of chats with errors, which
ramp's analysis catches and rolls back by itself. It prints what happens and the traffic
each model served, and exits 0 when both outcomes are as expected.`,
		Example: `  make build && bin/ramp demo --chat-api bin/chat-api`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.demo(cmd.Context(), file, chatAPI, rps)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "examples/chat-api/rollout.yaml", "rollout file of the sample chat-api")
	cmd.Flags().StringVar(&chatAPI, "chat-api", "bin/chat-api", "path of the built sample chat-api")
	cmd.Flags().IntVar(&rps, "rps", 200, "chat requests per second sent during the demo")
	return cmd
}

func (a *app) demo(ctx context.Context, file, chatAPI string, rps int) error {
	if rps <= 0 || rps > 2000 {
		return fmt.Errorf("--rps: %d is not between 1 and 2000", rps)
	}
	bin, err := filepath.Abs(chatAPI)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("--chat-api: %w (run `make build` first)", err)
	}
	raw, err := a.readInput(file)
	if err != nil {
		return err
	}
	stateDir, err := os.MkdirTemp("", "ramp-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	listen, err := freeLoopback()
	if err != nil {
		return err
	}
	apiAddr, err := freeLoopback()
	if err != nil {
		return err
	}
	version := func(model string, env ...v1alpha1.EnvVar) ([]byte, error) {
		return demoSpec(raw, bin, listen, model, env...)
	}
	first, err := version("triage-v1")
	if err != nil {
		return err
	}

	out := a.stdout
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	logs := &bytes.Buffer{}
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	done := make(chan error, 1)
	go func() {
		done <- a.runLocal(runCtx, local.Options{StateDir: stateDir, APIAddr: apiAddr, Logger: logger}, first)
	}()
	defer func() {
		stop()
		<-done
	}()
	c := &server.Client{BaseURL: "http://" + apiAddr, HTTP: &http.Client{Timeout: 10 * time.Second}}
	if err := waitUntil(ctx, 20*time.Second, func() bool { return c.Health(ctx) == nil }); err != nil {
		select {
		case err := <-done:
			return fmt.Errorf("local mode did not start: %w", err)
		default:
		}
		return errors.New("local mode did not start in 20s")
	}
	tok, err := os.ReadFile(filepath.Join(stateDir, local.TokenFile))
	if err != nil {
		return err
	}
	c.Token = strings.TrimSpace(string(tok))
	say("ramp is up: chat traffic on http://%s, control API on http://%s", listen, apiAddr)
	say("dashboard: http://%s%s (its buttons need the token of %s)", apiAddr, server.DashboardPath, filepath.Join(stateDir, local.TokenFile))

	// watch prints the rollout's progress until revision rev is stable or aborted.
	watch := func(what string, rev int64) (*v1alpha1.Rollout, error) {
		last := ""
		var ro *v1alpha1.Rollout
		err := waitUntil(ctx, 3*time.Minute, func() bool {
			r, err := c.Get(ctx, "chat-api")
			if err != nil || r.Status.CurrentRevision != rev {
				return false
			}
			ro = r
			line := fmt.Sprintf("%-11s %s", r.Status.Phase, r.Status.Message)
			if line != last {
				say("  %s", line)
				last = line
			}
			return r.Status.Phase == v1alpha1.PhaseDegraded || r.Status.Phase == v1alpha1.PhaseHealthy && r.Status.StableRevision == rev
		})
		if err != nil {
			return ro, fmt.Errorf("%s: %w", what, err)
		}
		return ro, nil
	}
	if _, err := watch("first deploy", 1); err != nil {
		return err
	}
	say("triage-v1 serves all traffic; sending %d chats per second from now on", rps)
	l := startDemoLoad(listen, rps)
	defer l.stop()

	good, err := version("triage-v2")
	if err != nil {
		return err
	}
	say("apply triage-v2, a healthy model:")
	if _, err := c.Apply(ctx, good); err != nil {
		return err
	}
	ro, err := watch("healthy rollout", 2)
	if err != nil {
		return err
	}
	if ro.Status.Phase != v1alpha1.PhaseHealthy {
		return fmt.Errorf("the healthy model was not promoted: %s", ro.Status.Message)
	}
	say("triage-v2 is stable. Traffic so far: %s", l.summary())
	if n := l.failures(); n > 0 {
		return fmt.Errorf("%d chats failed during a healthy rollout", n)
	}

	bad, err := version("triage-v3", v1alpha1.EnvVar{Name: "CHAT_ERROR_RATE", Value: "0.3"})
	if err != nil {
		return err
	}
	say("apply triage-v3, a bad model that fails 30%% of chats:")
	if _, err := c.Apply(ctx, bad); err != nil {
		return err
	}
	ro, err = watch("bad rollout", 3)
	if err != nil {
		return err
	}
	if ro.Status.Phase != v1alpha1.PhaseDegraded {
		return fmt.Errorf("the bad model was not rolled back: %s", ro.Status.Message)
	}
	l.stop()
	client := &http.Client{Timeout: 10 * time.Second}
	for range 20 {
		if model, ok := demoChat(client, "http://"+listen+"/v1/chat?message=check"); !ok || model != "triage-v2" {
			return fmt.Errorf("after the rollback a chat went to %q (ok=%v), want triage-v2", model, ok)
		}
	}
	say("ramp rolled triage-v3 back by itself; 20 of 20 new chats answered by triage-v2")
	say("traffic during the demo: %s (the failed ones are the bad model's, before the rollback)", l.summary())
	say("next: `bin/ramp up -f %s` runs the same rollout for you to drive with apply, promote, abort, undo", file)
	return nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// demoSpec rewrites the sample rollout to run bin on listen as model, with extra env.
func demoSpec(raw []byte, bin, listen, model string, env ...v1alpha1.EnvVar) ([]byte, error) {
	var docs [][]byte
	for _, doc := range bytes.Split(raw, []byte("\n---")) {
		var probe struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return nil, fmt.Errorf("read sample rollout: %w", err)
		}
		if probe.Kind != v1alpha1.KindRollout {
			docs = append(docs, doc)
			continue
		}
		var r v1alpha1.Rollout
		if err := yaml.Unmarshal(doc, &r); err != nil {
			return nil, fmt.Errorf("read sample rollout: %w", err)
		}
		p := r.Spec.Template.Process
		if p == nil {
			return nil, errors.New("the sample rollout has no process template")
		}
		p.Command = bin
		r.Spec.Listen = listen
		p.Env = append([]v1alpha1.EnvVar{{Name: "CHAT_MODEL", Value: model}}, env...)
		b, err := yaml.Marshal(&r)
		if err != nil {
			return nil, err
		}
		docs = append(docs, b)
	}
	return bytes.Join(docs, []byte("\n---\n")), nil
}

func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// demoLoad sends chats at a steady rate and counts answers by model.
type demoLoad struct {
	mu      sync.Mutex
	byModel map[string]int
	failed  int
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func startDemoLoad(addr string, rps int) *demoLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &demoLoad{byModel: map[string]int{}, cancel: cancel}
	client := &http.Client{Timeout: 30 * time.Second}
	url := "http://" + addr + "/v1/chat?message=I+have+a+headache"
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(time.Second / time.Duration(rps))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				model, ok := demoChat(client, url)
				l.mu.Lock()
				defer l.mu.Unlock()
				if ok {
					l.byModel[model]++
				} else {
					l.failed++
				}
			}()
		}
	}()
	return l
}

func demoChat(c *http.Client, url string) (string, bool) {
	resp, err := c.Get(url)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	model := resp.Header.Get("X-Chat-Model")
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return model, false
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == "data: [DONE]" {
			return model, true
		}
	}
	return model, false
}

func (l *demoLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *demoLoad) failures() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

func (l *demoLoad) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for _, m := range []string{"triage-v1", "triage-v2", "triage-v3"} {
		if n := l.byModel[m]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", m, n))
		}
	}
	return fmt.Sprintf("%s answered; %d chats failed", strings.Join(parts, ", "), l.failed)
}
