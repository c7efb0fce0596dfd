package kube

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// podExits is the controller's record of the container restarts it has reported per pod, so
// that each new restart gets one InstanceExited event. It holds only the pods a rollout had
// at its last decision, and forgets a rollout when it is deleted.
type podExits struct {
	mu sync.Mutex
	// started is when the controller started: a pod first seen with restarts whose last one
	// ended before then is not reported (the previous controller did, or nobody watched).
	started time.Time
	// reported is by rollout, then by pod UID, the restart count last reported.
	reported map[types.NamespacedName]map[types.UID]int32
}

func newPodExits(started time.Time) *podExits {
	return &podExits{started: started, reported: map[types.NamespacedName]map[types.UID]int32{}}
}

// observe returns an InstanceExited event for each pod of instances with restarts not yet
// reported, and remembers the pods' counts in place of the rollout's earlier record.
func (e *podExits) observe(ro types.NamespacedName, instances map[int64][]podInstance) []engine.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	before := e.reported[ro]
	next := map[types.UID]int32{}
	var out []engine.Event
	revs := make([]int64, 0, len(instances))
	for rev := range instances {
		revs = append(revs, rev)
	}
	sort.Slice(revs, func(i, j int) bool { return revs[i] < revs[j] })
	for _, rev := range revs {
		for _, pi := range instances[rev] {
			p := pi.pod
			exits, last := podExitsOf(p)
			next[p.UID] = exits
			was, seen := before[p.UID]
			if !seen && (last == nil || (!last.term.FinishedAt.IsZero() && last.term.FinishedAt.Time.Before(e.started))) {
				// First seen: report only a restart that ended while this controller ran.
				continue
			}
			if exits <= was {
				continue
			}
			msg := fmt.Sprintf("pod %s of revision %d restarted", p.Name, rev)
			if last != nil {
				msg = fmt.Sprintf("pod %s of revision %d: container %s %s", p.Name, rev, last.container, describeTermination(last.term))
				if !last.term.StartedAt.IsZero() && !last.term.FinishedAt.IsZero() {
					msg += fmt.Sprintf(" after %s", last.term.FinishedAt.Sub(last.term.StartedAt.Time).Round(time.Second))
				}
			}
			msg += fmt.Sprintf(" (restart %d of this pod)", exits)
			if last != nil {
				if m := strings.TrimSpace(last.term.Message); m != "" {
					msg += "; message: " + oneLine(m, 512)
				}
			}
			out = append(out, engine.Event{Type: engine.EventWarning, Reason: reasonInstanceExited, Revision: rev, Message: msg})
		}
	}
	e.reported[ro] = next
	return out
}

// forget drops the record of a rollout that is gone.
func (e *podExits) forget(ro types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.reported, ro)
}

// rollouts is how many rollouts the record holds.
func (e *podExits) rollouts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.reported)
}

const reasonInstanceExited = "InstanceExited"

// lastExit is a container's last termination.
type lastExit struct {
	container string
	term      *corev1.ContainerStateTerminated
}

// podExitsOf sums the restarts of p's containers and returns the latest termination among
// their last states (nil when none is known).
func podExitsOf(p *corev1.Pod) (int32, *lastExit) {
	var n int32
	var last *lastExit
	for _, cs := range p.Status.ContainerStatuses {
		n += cs.RestartCount
		t := cs.LastTerminationState.Terminated
		if t == nil {
			continue
		}
		if last == nil || t.FinishedAt.After(last.term.FinishedAt.Time) {
			last = &lastExit{container: cs.Name, term: t}
		}
	}
	return n, last
}

// describeTermination says how a container ended: "exited with status 137 (OOMKilled)",
// "killed by signal 9 (Error)".
func describeTermination(t *corev1.ContainerStateTerminated) string {
	s := fmt.Sprintf("exited with status %d", t.ExitCode)
	if t.Signal != 0 {
		s = fmt.Sprintf("killed by signal %d", t.Signal)
	}
	if t.Reason != "" {
		s += " (" + t.Reason + ")"
	}
	return s
}

// podLastExit is how p's containers last ended, for the engine's messages: "container app
// exited with status 137 (OOMKilled): out of memory"; empty when no container ended.
func podLastExit(p *corev1.Pod) string {
	_, last := podExitsOf(p)
	if last == nil {
		return ""
	}
	s := "container " + last.container + " " + describeTermination(last.term)
	if m := strings.TrimSpace(last.term.Message); m != "" {
		s += ": " + oneLine(m, 200)
	}
	return s
}

// oneLine folds s onto one line of at most n bytes, keeping its end (a log's last lines).
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

// rolloutKey names ro in the exit record.
func rolloutKey(ro *v1alpha1.Rollout) types.NamespacedName {
	return types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}
}
