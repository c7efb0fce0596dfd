// Package store keeps local mode's state in an embedded database (bbolt) under the state
// directory: rollouts with their status, revisions with their templates, analysis templates
// and an append-only event history per rollout.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
)

// ErrNotFound is returned (wrapped) when a rollout, analysis template or revision does not
// exist. Check it with errors.Is. It is the control contract's ErrNotFound.
var ErrNotFound = control.ErrNotFound

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("state directory in use by another ramp")

// lockTimeout is how long Open waits for another process to release the database.
const lockTimeout = time.Second

var (
	bucketRollouts  = []byte("rollouts")
	bucketTemplates = []byte("analysisTemplates")
	bucketRevisions = []byte("revisions") // one sub-bucket per rollout, keyed by number
	bucketEvents    = []byte("events")    // one sub-bucket per rollout, keyed by seq
)

// Store is local mode's database. It is safe for concurrent use. Every write is one bbolt
// transaction, synced to disk before it returns.
type Store struct {
	db *bolt.DB
}

// Open opens (creating it and its directory when missing) the database at path. When another
// process holds it, Open fails after a second with an error wrapping ErrLocked.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketRollouts, bucketTemplates, bucketRevisions, bucketEvents} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database and releases its lock.
func (s *Store) Close() error {
	return s.db.Close()
}

// Update runs fn in one read-write transaction: everything fn writes is committed together
// when it returns nil, and nothing is when it returns an error.
func (s *Store) Update(fn func(tx *Tx) error) error {
	return s.db.Update(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// View runs fn in one read-only transaction.
func (s *Store) View(fn func(tx *Tx) error) error {
	return s.db.View(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// PutRollout stores a rollout, spec and status, replacing any rollout of the same name.
func (s *Store) PutRollout(r *v1alpha1.Rollout) error {
	return s.Update(func(tx *Tx) error { return tx.PutRollout(r) })
}

// GetRollout returns the named rollout or an error wrapping ErrNotFound.
func (s *Store) GetRollout(name string) (r *v1alpha1.Rollout, err error) {
	err = s.View(func(tx *Tx) error {
		r, err = tx.GetRollout(name)
		return err
	})
	return r, err
}

// ListRollouts returns every rollout, ordered by name.
func (s *Store) ListRollouts() (rs []v1alpha1.Rollout, err error) {
	err = s.View(func(tx *Tx) error {
		rs, err = tx.ListRollouts()
		return err
	})
	return rs, err
}

// DeleteRollout removes a rollout with its revisions and events. It returns an error wrapping
// ErrNotFound when there is no such rollout.
func (s *Store) DeleteRollout(name string) error {
	return s.Update(func(tx *Tx) error { return tx.DeleteRollout(name) })
}

// PutAnalysisTemplate stores an analysis template, replacing any of the same name.
func (s *Store) PutAnalysisTemplate(t *v1alpha1.AnalysisTemplate) error {
	return s.Update(func(tx *Tx) error { return tx.PutAnalysisTemplate(t) })
}

// GetAnalysisTemplate returns the named template or an error wrapping ErrNotFound.
func (s *Store) GetAnalysisTemplate(name string) (t *v1alpha1.AnalysisTemplate, err error) {
	err = s.View(func(tx *Tx) error {
		t, err = tx.GetAnalysisTemplate(name)
		return err
	})
	return t, err
}

// ListAnalysisTemplates returns every analysis template, ordered by name.
func (s *Store) ListAnalysisTemplates() (ts []v1alpha1.AnalysisTemplate, err error) {
	err = s.View(func(tx *Tx) error {
		ts, err = tx.ListAnalysisTemplates()
		return err
	})
	return ts, err
}

// AddRevision records tmpl as the rollout's newest revision. When the newest revision already
// has the same template it is returned with created false; otherwise the new revision gets
// the next number (the highest so far plus one, starting at 1).
func (s *Store) AddRevision(rollout string, tmpl v1alpha1.Template, cause string, now time.Time) (rev control.Revision, created bool, err error) {
	err = s.Update(func(tx *Tx) error {
		rev, created, err = tx.AddRevision(rollout, tmpl, cause, now)
		return err
	})
	return rev, created, err
}

// ApplyRollout numbers r.Spec.Template by engine.RevisionNumber (the stable, current or newest
// revision when it has the same template, else a new revision), makes it r's current
// revision (r.Status.CurrentRevision) and stores r, in one transaction: either all is
// written or nothing.
func (s *Store) ApplyRollout(r *v1alpha1.Rollout, cause string, now time.Time) (rev control.Revision, created bool, err error) {
	err = s.Update(func(tx *Tx) error {
		rev, created, err = tx.addRevision(r.Name, r.Spec.Template, cause, now, r.Status.CurrentRevision, r.Status.StableRevision)
		if err != nil {
			return err
		}
		r.Status.CurrentRevision = rev.Number
		return tx.PutRollout(r)
	})
	return rev, created, err
}

// Revisions returns the rollout's revisions in ascending order of number; none for an
// unknown rollout.
func (s *Store) Revisions(rollout string) (revs []control.Revision, err error) {
	err = s.View(func(tx *Tx) error {
		revs, err = tx.Revisions(rollout)
		return err
	})
	return revs, err
}

// GetRevision returns revision n of the rollout or an error wrapping ErrNotFound.
func (s *Store) GetRevision(rollout string, n int64) (rev control.Revision, err error) {
	err = s.View(func(tx *Tx) error {
		rev, err = tx.GetRevision(rollout, n)
		return err
	})
	return rev, err
}

// DeleteRevisions deletes the rollout's revisions numbered numbers (see engine.PruneRevisions
// for which); an unknown one is no error.
func (s *Store) DeleteRevisions(rollout string, numbers ...int64) error {
	return s.Update(func(tx *Tx) error { return tx.DeleteRevisions(rollout, numbers...) })
}

// AppendEvent adds e to its rollout's history and returns it with its Seq set; sequence
// numbers grow by one per rollout, starting at 1.
func (s *Store) AppendEvent(e control.Event) (out control.Event, err error) {
	err = s.Update(func(tx *Tx) error {
		out, err = tx.AppendEvent(e)
		return err
	})
	return out, err
}

// Events returns the rollout's events with Seq greater than afterSeq, oldest first.
func (s *Store) Events(rollout string, afterSeq uint64) (es []control.Event, err error) {
	err = s.View(func(tx *Tx) error {
		es, err = tx.Events(rollout, afterSeq)
		return err
	})
	return es, err
}
