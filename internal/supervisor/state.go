package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// stateFile is the name of the file in StateDir that lists the running children.
const stateFile = "instances.json"

// recoverWait bounds how long New waits for the children of a previous ramp to die.
const recoverWait = 5 * time.Second

// stateEntry is one running child in instances.json.
type stateEntry struct {
	ID       string `json:"id"`
	Rollout  string `json:"rollout"`
	Revision int64  `json:"revision"`
	PID      int    `json:"pid"`
	PGID     int    `json:"pgid"`
	Addr     string `json:"addr"`
	// StartTime is field 22 of /proc/<pid>/stat (clock ticks after boot): it tells the
	// child from a later process that got the same pid.
	StartTime uint64 `json:"startTime"`
}

func (s *Supervisor) statePath() string { return filepath.Join(s.opts.StateDir, stateFile) }

// writeState replaces instances.json with the children running now. It does nothing without
// a StateDir or after Detach, so that the file keeps listing the detached children.
func (s *Supervisor) writeState() {
	if s.opts.StateDir == "" {
		return
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	s.mu.Lock()
	if s.detached {
		s.mu.Unlock()
		return
	}
	entries := []stateEntry{}
	for _, r := range s.revs {
		for _, in := range r.insts {
			if !in.running {
				continue
			}
			entries = append(entries, stateEntry{
				ID: in.info.ID, Rollout: r.key.rollout, Revision: r.key.revision,
				PID: in.info.PID, PGID: in.pgid, Addr: in.info.Addr, StartTime: in.startTicks,
			})
		}
	}
	s.mu.Unlock()
	if err := writeFileAtomic(s.statePath(), entries); err != nil {
		s.log.Error("write instance state", "err", err)
	}
}

func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// recover kills the children that instances.json lists and that are still alive with the
// recorded start time, waits for them to die, and empties the file. An unreadable file is
// logged and ignored: it must not keep ramp from starting.
func (s *Supervisor) recover() error {
	b, err := os.ReadFile(s.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read instance state: %w", err)
	}
	var entries []stateEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		s.log.Warn("ignore unreadable instance state", "path", s.statePath(), "err", err)
		entries = nil
	}
	self := syscall.Getpgrp()
	var killed []stateEntry
	for _, e := range entries {
		if e.PID <= 1 || e.PGID <= 1 || e.PGID == self || !s.sameProcess(e) {
			continue
		}
		s.log.Info("kill instance left by a previous ramp",
			keyRollout, e.Rollout, keyRevision, e.Revision, keyInstance, e.ID, "pid", e.PID)
		_ = syscall.Kill(e.PID, syscall.SIGKILL) // in case it left its process group
		if err := syscall.Kill(-e.PGID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			s.log.Warn("kill instance left by a previous ramp", keyInstance, e.ID, "err", err)
			continue
		}
		killed = append(killed, e)
	}
	// Wait until they are gone (or zombies), so their ports are free again.
	deadline := time.Now().Add(recoverWait)
	for _, e := range killed {
		for s.sameProcess(e) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := writeFileAtomic(s.statePath(), []stateEntry{}); err != nil {
		return fmt.Errorf("reset instance state: %w", err)
	}
	return nil
}

// sameProcess says e's process is alive (not a zombie) with the start time recorded.
func (s *Supervisor) sameProcess(e stateEntry) bool {
	p, err := s.proc.Proc(e.PID)
	if err != nil {
		return false
	}
	st, err := p.Stat()
	if err != nil {
		return false
	}
	return st.Starttime == e.StartTime && st.State != "Z" && st.State != "X"
}
