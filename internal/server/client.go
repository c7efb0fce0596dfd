package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
)

// Client calls the control API: the control contract over HTTP.
type Client struct {
	// BaseURL is the API's root, e.g. "http://127.0.0.1:7070".
	BaseURL string
	// Token is sent as a bearer token on every request. Empty sends none (and the server
	// refuses every call but Health).
	Token string
	// HTTP makes the requests. Nil means http.DefaultClient.
	HTTP *http.Client
}

// APIError is an error answer of the API.
type APIError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is the server's error text.
	Message string
	// Problems lists each problem of an invalid spec; empty for other errors.
	Problems []string
}

func (e *APIError) Error() string { return e.Message }

// Unwrap lets errors.Is find control.ErrNotFound for a 404, control.ErrConflict for a 409
// and control.ErrInvalid for a 400.
func (e *APIError) Unwrap() error {
	switch e.StatusCode {
	case http.StatusNotFound:
		return control.ErrNotFound
	case http.StatusConflict:
		return control.ErrConflict
	case http.StatusBadRequest:
		return control.ErrInvalid
	}
	return nil
}

// Health checks that the API answers.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, "", nil)
}

// List returns every rollout.
func (c *Client) List(ctx context.Context) ([]v1alpha1.Rollout, error) {
	var out []v1alpha1.Rollout
	err := c.do(ctx, http.MethodGet, "/api/v1/rollouts", nil, "", &out)
	return out, err
}

// Get returns one rollout.
func (c *Client) Get(ctx context.Context, name string) (*v1alpha1.Rollout, error) {
	var out v1alpha1.Rollout
	if err := c.do(ctx, http.MethodGet, rolloutPath(name, ""), nil, "", &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// History returns a rollout's revisions, oldest first.
func (c *Client) History(ctx context.Context, name string) ([]control.Revision, error) {
	var out []control.Revision
	err := c.do(ctx, http.MethodGet, rolloutPath(name, "history"), nil, "", &out)
	return out, err
}

// Events returns a rollout's events with Seq greater than afterSeq, oldest first.
func (c *Client) Events(ctx context.Context, name string, afterSeq uint64) ([]control.Event, error) {
	var out []control.Event
	p := rolloutPath(name, "events")
	if afterSeq > 0 {
		p += "?after=" + strconv.FormatUint(afterSeq, 10)
	}
	err := c.do(ctx, http.MethodGet, p, nil, "", &out)
	return out, err
}

// Apply sends YAML to apply and returns one line per object. An invalid spec gives an
// *APIError listing its Problems.
func (c *Client) Apply(ctx context.Context, yaml []byte) ([]string, error) {
	var out ApplyResult
	err := c.do(ctx, http.MethodPost, "/api/v1/apply", yaml, "application/yaml", &out)
	return out.Results, err
}

// Promote ends the current pause or step; full skips every remaining step and analysis.
func (c *Client) Promote(ctx context.Context, name string, full bool) (string, error) {
	p := rolloutPath(name, "promote")
	if full {
		p += "?full=true"
	}
	return c.action(ctx, p)
}

// Pause pauses a rollout.
func (c *Client) Pause(ctx context.Context, name string) (string, error) {
	return c.action(ctx, rolloutPath(name, "pause"))
}

// Resume resumes a paused rollout.
func (c *Client) Resume(ctx context.Context, name string) (string, error) {
	return c.action(ctx, rolloutPath(name, "resume"))
}

// Abort aborts a rollout: traffic goes back to stable.
func (c *Client) Abort(ctx context.Context, name string) (string, error) {
	return c.action(ctx, rolloutPath(name, "abort"))
}

// Retry runs an aborted rollout again.
func (c *Client) Retry(ctx context.Context, name string) (string, error) {
	return c.action(ctx, rolloutPath(name, "retry"))
}

// Undo re-applies revision toRevision (0: the one before the current) and says what it did.
func (c *Client) Undo(ctx context.Context, name string, toRevision int64) (control.UndoResult, error) {
	p := rolloutPath(name, "undo")
	if toRevision > 0 {
		p += "?toRevision=" + strconv.FormatInt(toRevision, 10)
	}
	var out control.UndoResult
	err := c.do(ctx, http.MethodPost, p, nil, "", &out)
	return out, err
}

// Restart replaces the stable revision's instances with new ones, a few at a time.
func (c *Client) Restart(ctx context.Context, name string) (string, error) {
	return c.action(ctx, rolloutPath(name, "restart"))
}

func (c *Client) action(ctx context.Context, path string) (string, error) {
	var out ActionResult
	err := c.do(ctx, http.MethodPost, path, nil, "", &out)
	return out.Message, err
}

func rolloutPath(name, sub string) string {
	p := "/api/v1/rollouts/" + url.PathEscape(name)
	if sub != "" {
		p += "/" + sub
	}
	return p
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, contentType string, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("call ramp API at %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		apiErr := &APIError{StatusCode: resp.StatusCode}
		var eb errorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			apiErr.Message, apiErr.Problems = eb.Error, eb.Errors
		} else {
			apiErr.Message = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return apiErr
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

var (
	_ error           = (*APIError)(nil)
	_ control.Control = (*Client)(nil)
)
