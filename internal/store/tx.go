package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/engine"
)

// Tx is one transaction, given to the function passed to Store.Update or Store.View. Its
// methods behave as the Store methods of the same name. A Tx must not be used after that
// function returns; writes through a Tx from View fail.
type Tx struct {
	tx *bolt.Tx
}

// PutRollout stores a rollout, spec and status.
func (t *Tx) PutRollout(r *v1alpha1.Rollout) error {
	if r == nil || r.Name == "" {
		return errors.New("put rollout: name is empty")
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode rollout %s: %w", r.Name, err)
	}
	if err := t.tx.Bucket(bucketRollouts).Put([]byte(r.Name), data); err != nil {
		return fmt.Errorf("put rollout %s: %w", r.Name, err)
	}
	return nil
}

// GetRollout returns the named rollout or an error wrapping ErrNotFound.
func (t *Tx) GetRollout(name string) (*v1alpha1.Rollout, error) {
	data := t.tx.Bucket(bucketRollouts).Get([]byte(name))
	if data == nil {
		return nil, fmt.Errorf("rollout %s: %w", name, ErrNotFound)
	}
	var r v1alpha1.Rollout
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode rollout %s: %w", name, err)
	}
	return &r, nil
}

// ListRollouts returns every rollout, ordered by name.
func (t *Tx) ListRollouts() ([]v1alpha1.Rollout, error) {
	return list[v1alpha1.Rollout](t.tx.Bucket(bucketRollouts), "rollout")
}

// DeleteRollout removes a rollout with its revisions and events.
func (t *Tx) DeleteRollout(name string) error {
	key := []byte(name)
	b := t.tx.Bucket(bucketRollouts)
	if b.Get(key) == nil {
		return fmt.Errorf("delete rollout %s: %w", name, ErrNotFound)
	}
	if err := b.Delete(key); err != nil {
		return fmt.Errorf("delete rollout %s: %w", name, err)
	}
	for _, parent := range [][]byte{bucketRevisions, bucketEvents} {
		pb := t.tx.Bucket(parent)
		if pb.Bucket(key) == nil {
			continue
		}
		if err := pb.DeleteBucket(key); err != nil {
			return fmt.Errorf("delete %s of rollout %s: %w", parent, name, err)
		}
	}
	return nil
}

// PutAnalysisTemplate stores an analysis template.
func (t *Tx) PutAnalysisTemplate(at *v1alpha1.AnalysisTemplate) error {
	if at == nil || at.Name == "" {
		return errors.New("put analysis template: name is empty")
	}
	data, err := json.Marshal(at)
	if err != nil {
		return fmt.Errorf("encode analysis template %s: %w", at.Name, err)
	}
	if err := t.tx.Bucket(bucketTemplates).Put([]byte(at.Name), data); err != nil {
		return fmt.Errorf("put analysis template %s: %w", at.Name, err)
	}
	return nil
}

// GetAnalysisTemplate returns the named template or an error wrapping ErrNotFound.
func (t *Tx) GetAnalysisTemplate(name string) (*v1alpha1.AnalysisTemplate, error) {
	data := t.tx.Bucket(bucketTemplates).Get([]byte(name))
	if data == nil {
		return nil, fmt.Errorf("analysis template %s: %w", name, ErrNotFound)
	}
	var at v1alpha1.AnalysisTemplate
	if err := json.Unmarshal(data, &at); err != nil {
		return nil, fmt.Errorf("decode analysis template %s: %w", name, err)
	}
	return &at, nil
}

// ListAnalysisTemplates returns every analysis template, ordered by name.
func (t *Tx) ListAnalysisTemplates() ([]v1alpha1.AnalysisTemplate, error) {
	return list[v1alpha1.AnalysisTemplate](t.tx.Bucket(bucketTemplates), "analysis template")
}

// TemplateHash is the hash AddRevision gives a template: the hex sha256 of its JSON.
func TemplateHash(tmpl v1alpha1.Template) (string, error) {
	data, err := json.Marshal(tmpl)
	if err != nil {
		return "", fmt.Errorf("encode template: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// AddRevision records tmpl as the rollout's newest revision unless the newest already has it.
func (t *Tx) AddRevision(rollout string, tmpl v1alpha1.Template, cause string, now time.Time) (control.Revision, bool, error) {
	return t.addRevision(rollout, tmpl, cause, now, 0, 0)
}

// addRevision numbers tmpl by engine.RevisionNumber, given the rollout's current and stable
// revisions, and records it when it is new.
func (t *Tx) addRevision(rollout string, tmpl v1alpha1.Template, cause string, now time.Time, current, stable int64) (control.Revision, bool, error) {
	if rollout == "" {
		return control.Revision{}, false, errors.New("add revision: rollout name is empty")
	}
	hash, err := TemplateHash(tmpl)
	if err != nil {
		return control.Revision{}, false, fmt.Errorf("add revision to %s: %w", rollout, err)
	}
	b, err := t.tx.Bucket(bucketRevisions).CreateBucketIfNotExists([]byte(rollout))
	if err != nil {
		return control.Revision{}, false, fmt.Errorf("add revision to %s: %w", rollout, err)
	}
	var highest int64
	if k, _ := b.Cursor().Last(); k != nil {
		highest = int64(decodeKey(k))
	}
	var decodeErr error
	known := map[int64]control.Revision{}
	number, isNew := engine.RevisionNumber(hash, highest, current, stable, func(n int64) string {
		data := b.Get(encodeKey(uint64(n)))
		if data == nil {
			return ""
		}
		var rev control.Revision
		if err := json.Unmarshal(data, &rev); err != nil {
			decodeErr = fmt.Errorf("decode revision %d of %s: %w", n, rollout, err)
			return ""
		}
		known[n] = rev
		return rev.Hash
	})
	if decodeErr != nil {
		return control.Revision{}, false, decodeErr
	}
	if !isNew {
		return known[number], false, nil
	}
	rev := control.Revision{Rollout: rollout, Number: number, Template: tmpl, Hash: hash, CreatedAt: now.UTC(), Cause: cause}
	data, err := json.Marshal(rev)
	if err != nil {
		return control.Revision{}, false, fmt.Errorf("encode revision %d of %s: %w", number, rollout, err)
	}
	if err := b.Put(encodeKey(uint64(number)), data); err != nil {
		return control.Revision{}, false, fmt.Errorf("put revision %d of %s: %w", number, rollout, err)
	}
	return rev, true, nil
}

// Revisions returns the rollout's revisions in ascending order of number.
func (t *Tx) Revisions(rollout string) ([]control.Revision, error) {
	b := t.tx.Bucket(bucketRevisions).Bucket([]byte(rollout))
	if b == nil {
		return nil, nil
	}
	return list[control.Revision](b, "revision")
}

// GetRevision returns revision n of the rollout or an error wrapping ErrNotFound.
func (t *Tx) GetRevision(rollout string, n int64) (control.Revision, error) {
	var data []byte
	if b := t.tx.Bucket(bucketRevisions).Bucket([]byte(rollout)); b != nil && n > 0 {
		data = b.Get(encodeKey(uint64(n)))
	}
	if data == nil {
		return control.Revision{}, fmt.Errorf("revision %d of rollout %s: %w", n, rollout, ErrNotFound)
	}
	var rev control.Revision
	if err := json.Unmarshal(data, &rev); err != nil {
		return control.Revision{}, fmt.Errorf("decode revision %d of %s: %w", n, rollout, err)
	}
	return rev, nil
}

// DeleteRevisions deletes the rollout's revisions numbered numbers; an unknown one is no
// error.
func (t *Tx) DeleteRevisions(rollout string, numbers ...int64) error {
	b := t.tx.Bucket(bucketRevisions).Bucket([]byte(rollout))
	if b == nil {
		return nil
	}
	for _, n := range numbers {
		if n <= 0 {
			continue
		}
		if err := b.Delete(encodeKey(uint64(n))); err != nil {
			return fmt.Errorf("delete revision %d of %s: %w", n, rollout, err)
		}
	}
	return nil
}

// AppendEvent adds e to its rollout's history and returns it with its Seq set.
func (t *Tx) AppendEvent(e control.Event) (control.Event, error) {
	if e.Rollout == "" {
		return control.Event{}, errors.New("append event: rollout name is empty")
	}
	b, err := t.tx.Bucket(bucketEvents).CreateBucketIfNotExists([]byte(e.Rollout))
	if err != nil {
		return control.Event{}, fmt.Errorf("append event to %s: %w", e.Rollout, err)
	}
	seq, err := b.NextSequence()
	if err != nil {
		return control.Event{}, fmt.Errorf("append event to %s: %w", e.Rollout, err)
	}
	e.Seq = seq
	data, err := json.Marshal(e)
	if err != nil {
		return control.Event{}, fmt.Errorf("encode event of %s: %w", e.Rollout, err)
	}
	if err := b.Put(encodeKey(seq), data); err != nil {
		return control.Event{}, fmt.Errorf("append event to %s: %w", e.Rollout, err)
	}
	return e, nil
}

// Events returns the rollout's events with Seq greater than afterSeq, oldest first.
func (t *Tx) Events(rollout string, afterSeq uint64) ([]control.Event, error) {
	b := t.tx.Bucket(bucketEvents).Bucket([]byte(rollout))
	if b == nil {
		return nil, nil
	}
	var out []control.Event
	c := b.Cursor()
	for k, v := c.Seek(encodeKey(afterSeq + 1)); k != nil; k, v = c.Next() {
		var e control.Event
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("decode event %d of %s: %w", decodeKey(k), rollout, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// list decodes every value of b, in key order.
func list[T any](b *bolt.Bucket, what string) ([]T, error) {
	var out []T
	err := b.ForEach(func(k, v []byte) error {
		if v == nil { // a nested bucket
			return nil
		}
		var item T
		if err := json.Unmarshal(v, &item); err != nil {
			return fmt.Errorf("decode %s %q: %w", what, k, err)
		}
		out = append(out, item)
		return nil
	})
	return out, err
}

// encodeKey makes numeric keys sort in numeric order.
func encodeKey(n uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, n)
}

func decodeKey(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}
