package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

// instancePIDs reads the processes of revision rev that ramp's supervisor lists in its state
// directory (instances.json), by instance ID.
func (r *ramp) instancePIDs(rev int64) map[string]int {
	r.t.Helper()
	data, err := os.ReadFile(filepath.Join(r.stateDir, "instances.json"))
	if err != nil {
		r.t.Fatal(err)
	}
	var entries []struct {
		ID       string `json:"id"`
		Revision int64  `json:"revision"`
		PID      int    `json:"pid"`
	}
	if err := json.Unmarshal(data, &entries); err != nil {
		r.t.Fatalf("instances.json: %v\n%s", err, data)
	}
	out := map[string]int{}
	for _, e := range entries {
		if e.Revision == rev {
			out[e.ID] = e.PID
		}
	}
	return out
}

func TestRestartReplacesEveryProcessWithZeroFailedRequests(t *testing.T) {
	// Given ramp serving revision 1 with 3 processes under light load, each answer taking
	// 300ms (requests are in flight when a process is replaced) and each process half a
	// second to become ready
	s := spec{Listen: testkit.FreeAddr(t), Strategy: canarySteps, Replicas: 3}
	r := startRamp(t, model(s, "v1", "CHAT_LATENCY", "300ms", "CHAT_STARTUP_DELAY", "500ms"))
	var before map[string]int
	waitFor(t, 10*time.Second, "3 processes of revision 1", func() (bool, string) {
		before = r.instancePIDs(1)
		return len(before) == 3, fmt.Sprint(before)
	})
	l := startLoad(t, s.Listen, 50, nil)

	// When the team runs ramp restart
	out := r.must("restart", "chat-api")
	if !strings.Contains(out, "rollout/chat-api restarting: the instances of stable revision 1 are replaced a few at a time") {
		t.Fatalf("restart said: %s", out)
	}

	// Then every process is replaced by a new one of the same revision, with no new revision,
	// and no request fails
	ro := r.waitFor(60*time.Second, "the restart to complete", func(ro v1alpha1.Rollout) bool {
		return ro.Status.RestartedAt != nil && ro.Spec.RestartAt != nil && !ro.Status.RestartedAt.Before(ro.Spec.RestartAt)
	})
	var after map[string]int
	waitFor(t, 30*time.Second, "3 new processes of revision 1 and the old ones gone", func() (bool, string) {
		after = r.instancePIDs(1)
		if len(after) != 3 {
			return false, fmt.Sprint(after)
		}
		for id, pid := range before {
			if _, ok := after[id]; ok {
				return false, "instance " + id + " is still there"
			}
			if slices.Contains(mapValues(after), pid) {
				return false, fmt.Sprintf("pid %d is still serving", pid)
			}
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				return false, fmt.Sprintf("old process %d still runs (%v)", pid, err)
			}
		}
		return true, ""
	})
	t.Logf("processes before %v, after %v", before, after)
	if ro.Status.CurrentRevision != 1 || ro.Status.StableRevision != 1 || ro.Status.Phase != v1alpha1.PhaseHealthy {
		t.Errorf("after the restart: current %d stable %d phase %s; want 1, 1, Healthy", ro.Status.CurrentRevision, ro.Status.StableRevision, ro.Status.Phase)
	}
	assertNoFailures(t, l, "v1")
	if hist := r.must("history", "chat-api"); strings.Count(strings.TrimSpace(hist), "\n") != 1 {
		t.Errorf("the restart made a revision:\n%s", hist)
	}
	if ev := r.must("events", "chat-api"); !strings.Contains(ev, "Restarted") {
		t.Errorf("no Restarted event:\n%s", ev)
	}
}

func mapValues(m map[string]int) []int {
	out := make([]int, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
