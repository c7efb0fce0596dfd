package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/secretsource"
	"ramp.dev/ramp/internal/spec"
)

// Log keys.
const (
	keyRollout      = "rollout"
	keyNamespace    = "namespace"
	keyNotification = "notification" // the destination's name, never its URL
	keyEvent        = "event"
	keyID           = "id"
	keyAttempt      = "attempt"
)

// SecretReader reads one key of a Kubernetes Secret (Kubernetes mode's secret reader is
// one). Its errors name the Secret and the key, never the value.
type SecretReader interface {
	SecretValue(ctx context.Context, namespace, name, key string) ([]byte, error)
}

// Defaults of Config.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultAttempts   = 6
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = 30 * time.Second
	DefaultQueueSize  = 100
)

// Config sets up a Notifier. Each zero field means its default.
type Config struct {
	// Client sends the requests. Nil means a client that follows no redirect.
	Client *http.Client
	// Secrets reads urlSecretRef and valueSecretRef. Nil means they cannot be read (local
	// mode): a destination with one is not sent to, and the log says why.
	Secrets SecretReader
	// Log receives a line per notification given up on or dropped. Nil means slog.Default.
	Log *slog.Logger
	// Timeout bounds one request, DefaultTimeout when zero.
	Timeout time.Duration
	// Attempts is how many times a notification is sent before it is given up on: the
	// first time and its retries. Zero means DefaultAttempts.
	Attempts int
	// Backoff is the wait before the first retry, doubled before each next one up to
	// MaxBackoff (zero: DefaultBackoff and DefaultMaxBackoff). A 429's Retry-After is waited
	// instead when it is longer, up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// QueueSize bounds the notifications waiting per destination; when it is full the
	// oldest is dropped (and logged). Zero means DefaultQueueSize.
	QueueSize int
	// Getenv reads urlEnv and valueEnv. Nil means os.Getenv.
	Getenv func(string) string
	// Failed, when set, is told of each notification given up on or dropped, to record it
	// as an event of the rollout: r holds the rollout's name, namespace and UID, msg names
	// the destination, never its URL. Nil means the log alone.
	Failed func(r *v1alpha1.Rollout, revision int64, msg string)
}

// Notifier sends notifications to the destinations of each rollout's spec.notifications.
// Each destination of each rollout has its own queue, sent in order by its own goroutine
// (which ends when the queue is empty): a slow or failing destination delays only itself.
// Its methods are safe for concurrent use.
type Notifier struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	queues map[string]*queue
	closed bool
}

// queue is one destination's notifications waiting to be sent, oldest first.
type queue struct {
	items []item
}

type item struct {
	dest  v1alpha1.Notification
	n     Notification
	owner *v1alpha1.Rollout
}

// New returns a Notifier; Close stops it.
func New(cfg Config) *Notifier {
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Notifier{cfg: cfg, ctx: ctx, cancel: cancel, queues: map[string]*queue{}}
}

// Notify queues the notifications of one step of r (see Of) for r's destinations. It does
// not wait for them to be sent.
func (n *Notifier) Notify(before *v1alpha1.RolloutStatus, r *v1alpha1.Rollout, events []engine.Event, now time.Time) {
	if n == nil || len(r.Spec.Notifications) == 0 {
		return
	}
	n.Send(r, Of(before, r, events, now))
}

// Send queues ns for each of r's destinations that wants their events.
func (n *Notifier) Send(r *v1alpha1.Rollout, ns []Notification) {
	if len(ns) == 0 {
		return
	}
	type drop struct {
		it  item
		msg string
	}
	var drops []drop
	defer func() { // told outside the lock
		for _, d := range drops {
			n.failed(d.it, d.msg)
		}
	}()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	owner := &v1alpha1.Rollout{TypeMeta: r.TypeMeta}
	owner.Name, owner.Namespace, owner.UID = r.Name, r.Namespace, r.UID
	for i := range r.Spec.Notifications {
		dest := *r.Spec.Notifications[i].DeepCopy()
		key := r.Namespace + "/" + r.Name + "/" + dest.Name
		for _, x := range ns {
			if len(dest.Events) > 0 && !contains(dest.Events, x.Event) {
				continue
			}
			q := n.queues[key]
			if q == nil {
				q = &queue{}
				n.queues[key] = q
				n.wg.Add(1)
				go n.run(key, q)
			}
			if len(q.items) >= n.cfg.QueueSize {
				old := q.items[0]
				q.items = q.items[1:]
				n.cfg.Log.Warn("notification dropped: its destination's queue is full", keyRollout, r.Name, keyNamespace, r.Namespace,
					keyNotification, dest.Name, keyEvent, old.n.Event, keyID, old.n.ID, "queue", n.cfg.QueueSize)
				drops = append(drops, drop{old, fmt.Sprintf("notification %s dropped: %s's queue of %d is full", old.n.Event, dest.Name, n.cfg.QueueSize)})
			}
			q.items = append(q.items, item{dest: dest, n: x, owner: owner})
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Close stops taking notifications and waits, until ctx is done, for the queued ones to be
// sent; then it abandons the rest.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		n.cancel()
		return nil
	case <-ctx.Done():
		n.cancel()
		<-done
		return fmt.Errorf("notifications left unsent: %w", ctx.Err())
	}
}

// run sends q's notifications in order until q is empty.
func (n *Notifier) run(key string, q *queue) {
	defer n.wg.Done()
	for {
		n.mu.Lock()
		if len(q.items) == 0 || n.ctx.Err() != nil {
			delete(n.queues, key)
			n.mu.Unlock()
			return
		}
		it := q.items[0]
		q.items = q.items[1:]
		n.mu.Unlock()
		n.deliver(it)
	}
}

// deliver sends one notification, retrying a failure that may pass: a connection error, a
// timeout, a 5xx or a 429. Other answers (a 4xx, a redirect) give up at once.
func (n *Notifier) deliver(it item) {
	log := n.cfg.Log.With(keyRollout, it.n.Rollout, keyNamespace, it.n.Namespace, keyNotification, it.dest.Name, keyEvent, it.n.Event, keyID, it.n.ID)
	body, err := Body(it.dest.Type, it.n)
	if err != nil {
		log.Error("notification not sent", "err", err)
		return
	}
	wait := n.cfg.Backoff
	for attempt := 1; ; attempt++ {
		retry, after, err := n.post(it, body)
		if err == nil {
			log.Debug("notification sent", keyAttempt, attempt)
			return
		}
		if !retry || attempt >= n.cfg.Attempts {
			log.Warn("notification given up", keyAttempt, attempt, "err", err)
			n.failed(it, fmt.Sprintf("notification %s not sent to %s (attempts: %d): %s", it.n.Event, it.dest.Name, attempt, err.Error()))
			return
		}
		d := max(wait, min(after, n.cfg.MaxBackoff))
		log.Info("notification failed; retrying", keyAttempt, attempt, "in", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-n.ctx.Done():
			t.Stop()
			log.Warn("notification abandoned: ramp stops", keyAttempt, attempt)
			return
		}
		wait = min(2*wait, n.cfg.MaxBackoff)
	}
}

// failed tells Config.Failed of it.
func (n *Notifier) failed(it item, msg string) {
	if n.cfg.Failed != nil {
		n.cfg.Failed(it.owner, it.n.Revision, msg)
	}
}

// post makes one attempt. It reports whether a failure is worth a retry, and a 429's
// Retry-After. Its errors never hold the URL.
func (n *Notifier) post(it item, body []byte) (retry bool, after time.Duration, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Timeout)
	defer cancel()
	u, err := n.value(ctx, it.n.Namespace, "url", it.dest.URL, it.dest.URLFile, it.dest.URLEnv, it.dest.URLSecretRef)
	if err != nil {
		return true, 0, err // a Secret or file may appear
	}
	if err := spec.CheckNotificationURL(u); err != nil {
		return false, 0, fmt.Errorf("the url %s", err.Error())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return false, 0, errors.New("the url is not a valid request URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ramp-notifications")
	for i, h := range it.dest.Headers {
		v, err := n.value(ctx, it.n.Namespace, fmt.Sprintf("headers[%d].value", i), h.Value, h.ValueFile, h.ValueEnv, h.ValueSecretRef)
		if err != nil {
			return true, 0, err
		}
		req.Header.Set(h.Name, v)
	}
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL
		}
		if n.ctx.Err() != nil {
			return false, 0, err
		}
		return true, 0, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return false, 0, nil
	case c == http.StatusTooManyRequests:
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			after = time.Duration(s) * time.Second
		}
		return true, after, fmt.Errorf("answered %s", resp.Status)
	case c >= 500:
		return true, 0, fmt.Errorf("answered %s: %s", resp.Status, oneLine(snippet))
	default:
		return false, 0, fmt.Errorf("answered %s: %s", resp.Status, oneLine(snippet))
	}
}

func oneLine(b []byte) string {
	return strings.Join(strings.Fields(string(b)), " ")
}

// value reads the setting at path from the one of its sources that is set
// (secretsource).
func (n *Notifier) value(ctx context.Context, namespace, path, inline, file, env string, ref *v1alpha1.SecretKeyRef) (string, error) {
	var secrets secretsource.Reader
	if n.cfg.Secrets != nil {
		secrets = n.cfg.Secrets
	}
	v, ok, err := secretsource.Sources{Secrets: secrets, Namespace: namespace, Getenv: n.cfg.Getenv}.Read(ctx, path, inline, file, env, ref)
	if err == nil && !ok {
		err = fmt.Errorf("%s is not set", path)
	}
	return v, err
}
