package e2e

import (
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

// switchedBackWithin sends chats one after the other from start and returns how long it took
// until every answer came from model want (checked with 20 more after the first one).
func switchedBackWithin(t *testing.T, addr, want string, start time.Time) time.Duration {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	var took time.Duration
	for {
		m, err := chat(c, "http://"+addr+"/v1/chat?message=hi", nil)
		if err == nil && m == want {
			took = time.Since(start)
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("traffic not back on %s 10s after the command (last answer %q, %v)", want, m, err)
		}
	}
	if got := models(t, addr, 20, nil); got[want] != 20 {
		t.Fatalf("after the switch back: %v, want all 20 from %s", got, want)
	}
	return took
}

// inWatch waits until revision 2 is stable with the watch window open over revision 1.
func (r *ramp) inWatch() v1alpha1.Rollout {
	r.t.Helper()
	return r.waitFor(60*time.Second, "revision 2 stable in the watch window", func(ro v1alpha1.Rollout) bool {
		w := ro.Status.Watch
		return ro.Status.Phase == v1alpha1.PhaseHealthy && ro.Status.StableRevision == 2 && w != nil && w.PreviousRevision == 1 && readyOf(ro, 1) == 3
	})
}

// The watch window's two commands, on a live service under load: a blue-green `ramp abort`
// and a canary `ramp undo` right after promotion send all traffic back to the previous
// revision's running processes in under a second, start no process, and fail no request.
func TestSwitchBackInTheWatchWindowIsInstant(t *testing.T) {
	for _, c := range []struct {
		name, strategy string
		cmd            []string
		phase          v1alpha1.RolloutPhase
	}{
		{"blue-green abort", "    blueGreen: {}\n", []string{"abort", "chat-api"}, v1alpha1.PhaseDegraded},
		{"canary undo", "    canary:\n      steps:\n      - setWeight: 50\n      - pause: {duration: 1s}\n", []string{"undo", "chat-api"}, v1alpha1.PhaseHealthy},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := spec{Listen: testkit.FreeAddr(t), Strategy: c.strategy, Replicas: 3}
			r := startRamp(t, model(s, "v1"))
			l := startLoad(t, s.Listen, 40, nil)
			r.apply(model(s, "v2"))
			ro := r.inWatch()
			if !strings.Contains(ro.Status.Message, "watching it until") {
				t.Errorf("message %q does not tell the window", ro.Status.Message)
			}
			if got := models(t, s.Listen, 10, nil); got["v2"] != 10 {
				t.Fatalf("in the window: %v, want all from v2", got)
			}
			before := r.instancePIDs(1)
			if len(before) != 3 {
				t.Fatalf("revision 1 runs %d processes in the window, want 3 kept warm: %v", len(before), before)
			}
			start := time.Now()
			out := r.must(c.cmd...)
			took := switchedBackWithin(t, s.Listen, "v1", start)
			t.Logf("%s: %q; all traffic on v1 %s after the command", c.name, strings.TrimSpace(out), took.Round(time.Millisecond))
			if took > time.Second {
				t.Errorf("switch back took %s, want under 1s", took)
			}
			if after := r.instancePIDs(1); !maps.Equal(before, after) {
				t.Errorf("revision 1's processes changed: before %v, after %v", before, after)
			}
			ro = r.waitPhase(c.phase, 10*time.Second)
			if ro.Status.StableRevision != 1 || ro.Status.Watch != nil {
				t.Fatalf("after %s: stable %d watch %+v: %s", c.name, ro.Status.StableRevision, ro.Status.Watch, ro.Status.Message)
			}
			for rev := int64(3); rev <= 4; rev++ {
				if n := len(r.instancePIDs(rev)); n != 0 {
					t.Errorf("revision %d started %d processes", rev, n)
				}
			}
			assertNoFailures(t, l, "v1", "v2")
		})
	}
}
