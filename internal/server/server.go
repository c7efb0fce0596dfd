package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 4 << 20

// Log keys.
const (
	logMethod   = "method"
	logPath     = "path"
	logStatus   = "status"
	logDuration = "duration"
	logError    = "error"
)

// Option changes how New builds the handler.
type Option func(*api)

// WithAllowedHosts adds names the API answers to besides the address a request came in on
// (see CheckHost).
func WithAllowedHosts(hosts []string) Option {
	return func(a *api) { a.allowedHosts = hosts }
}

// NewToken returns a fresh API token: 32 random bytes, hex encoded.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

type api struct {
	b            control.Control
	token        []byte
	logger       *slog.Logger
	allowedHosts []string
}

// New returns the control API over b: the HTTP transport of the control contract, which
// answers an error wrapping control.ErrNotFound with 404, control.ErrConflict with 409 and
// control.ErrInvalid with 400. Every request under /api/v1, reads included, must carry
// "Authorization: Bearer <token>"; an empty token refuses them all. Only GET /healthz, which
// tells nothing but "ok", and the dashboard (its page under /dashboard/ and its read API of
// views without templates, env or arguments: see view.go) are answered without it. Every
// request, /healthz and the dashboard included, must also pass CheckHost: its Host (and
// Origin, if any) must name the address it came in on or a name of WithAllowedHosts. A nil
// logger discards logs.
func New(b control.Control, token string, logger *slog.Logger, opts ...Option) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &api{b: b, token: []byte(token), logger: logger}
	for _, o := range opts {
		o(a)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	a.dashboard(mux)
	mux.Handle("GET /api/v1/rollouts", a.auth(a.list))
	mux.Handle("GET /api/v1/rollouts/{name}", a.auth(a.get))
	mux.Handle("GET /api/v1/rollouts/{name}/history", a.auth(a.history))
	mux.Handle("GET /api/v1/rollouts/{name}/events", a.auth(a.events))
	mux.Handle("POST /api/v1/apply", a.auth(a.apply))
	mux.Handle("POST /api/v1/rollouts/{name}/promote", a.auth(a.promote))
	mux.Handle("POST /api/v1/rollouts/{name}/pause", a.auth(a.action(control.Control.Pause)))
	mux.Handle("POST /api/v1/rollouts/{name}/resume", a.auth(a.action(control.Control.Resume)))
	mux.Handle("POST /api/v1/rollouts/{name}/abort", a.auth(a.action(control.Control.Abort)))
	mux.Handle("POST /api/v1/rollouts/{name}/retry", a.auth(a.action(control.Control.Retry)))
	mux.Handle("POST /api/v1/rollouts/{name}/undo", a.auth(a.undo))
	mux.Handle("POST /api/v1/rollouts/{name}/restart", a.auth(a.action(control.Control.Restart)))
	return a.logRequests(CheckHost(a.allowedHosts, logger, mux))
}

// statusRecorder remembers the status a handler wrote, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// logRequests logs method, path (without the query), status and duration; never headers.
// A panic in a handler is answered with a 500.
func (a *api) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.logger.Error("api request panicked", logMethod, r.Method, logPath, r.URL.Path, logError, fmt.Sprint(v))
				writeJSON(rec, http.StatusInternalServerError, errorBody{Error: fmt.Sprintf("internal error: %v", v)})
			}
		}()
		next.ServeHTTP(rec, r)
		a.logger.Debug("api request", logMethod, r.Method, logPath, r.URL.Path, logStatus, rec.status, logDuration, time.Since(start))
	})
}

func (a *api) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || len(a.token) == 0 || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), a.token) != 1 {
			a.logger.Warn("api request refused: missing or wrong token", logMethod, r.Method, logPath, r.URL.Path)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "missing or wrong bearer token"})
			return
		}
		h(w, r)
	})
}

// errorBody is every error answer.
type errorBody struct {
	Error string `json:"error"`
	// Errors lists each problem of an invalid spec, one line each.
	Errors []string `json:"errors,omitempty"`
}

// ApplyResult is the answer to POST /api/v1/apply.
type ApplyResult struct {
	// Results has one line per object ("rollout/chat-api configured").
	Results []string `json:"results"`
}

// ActionResult is the answer to promote, pause, resume, abort, retry and restart.
type ActionResult struct {
	Message string `json:"message"`
}

func (a *api) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	rs, err := a.b.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if rs == nil {
		rs = []v1alpha1.Rollout{}
	}
	writeJSON(w, http.StatusOK, rs)
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	ro, err := a.b.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ro)
}

func (a *api) history(w http.ResponseWriter, r *http.Request) {
	revs, err := a.b.History(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if revs == nil {
		revs = []control.Revision{}
	}
	writeJSON(w, http.StatusOK, revs)
}

// events answers the rollout's events; ?after=SEQ keeps those with a greater Seq.
func (a *api) events(w http.ResponseWriter, r *http.Request) {
	var after uint64
	if s := r.URL.Query().Get("after"); s != "" {
		var err error
		if after, err = strconv.ParseUint(s, 10, 64); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("after: %q is not a sequence number", s)})
			return
		}
	}
	es, err := a.b.Events(r.Context(), r.PathValue("name"), after)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if es == nil {
		es = []control.Event{}
	}
	writeJSON(w, http.StatusOK, es)
}

func (a *api) apply(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes)})
			return
		}
		writeJSON(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("read body: %s", err)})
		return
	}
	lines, err := a.b.Apply(r.Context(), body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if lines == nil {
		lines = []string{}
	}
	writeJSON(w, http.StatusOK, ApplyResult{Results: lines})
}

func (a *api) promote(w http.ResponseWriter, r *http.Request) {
	full, err := boolParam(r, "full")
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
		return
	}
	msg, err := a.b.Promote(r.Context(), r.PathValue("name"), full)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ActionResult{Message: msg})
}

func (a *api) action(do func(control.Control, context.Context, string) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		msg, err := do(a.b, r.Context(), r.PathValue("name"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, ActionResult{Message: msg})
	}
}

func (a *api) undo(w http.ResponseWriter, r *http.Request) {
	var to int64
	if s := r.URL.Query().Get("toRevision"); s != "" {
		var err error
		if to, err = strconv.ParseInt(s, 10, 64); err != nil || to < 0 {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("toRevision: %q is not a revision number", s)})
			return
		}
	}
	res, err := a.b.Undo(r.Context(), r.PathValue("name"), to)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func boolParam(r *http.Request, name string) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s: %q is not true or false", name, s)
	}
	return v, nil
}

// fail answers a control error with the status its sentinel calls for.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, control.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, control.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, control.ErrInvalid):
		status = http.StatusBadRequest
	}
	if status == http.StatusInternalServerError {
		a.logger.Error("api request failed", logMethod, r.Method, logPath, r.URL.Path, logError, err)
	}
	body := errorBody{Error: err.Error()}
	if status == http.StatusBadRequest {
		body.Errors = control.Problems(err)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
