// Package web is the analysis provider that calls an HTTP endpoint answering JSON and picks
// the measured value with a JSONPath (RFC 9535, parsed by github.com/theory/jsonpath).
package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/spec"
)

// DefaultTimeout bounds a request when the metric sets no timeout.
const DefaultTimeout = 10 * time.Second

// maxBody is the largest answer read.
const maxBody = 4 << 20

// Provider measures web metrics. It implements analysis.Provider.
type Provider struct {
	client *http.Client
}

var _ analysis.Provider = (*Provider)(nil)

// New returns a provider sending requests with client. A nil client means a new
// http.Client with the default transport.
func New(client *http.Client) *Provider {
	if client == nil {
		client = &http.Client{}
	}
	return &Provider{client: client}
}

// Measure calls the metric's URL and reads the value its jsonPath selects. A non-2xx status,
// an answer that is not JSON, a path that selects nothing or more than one value, and a
// value that is not a number, a numeric string or a boolean are errors; a null value is
// Inconclusive (no data).
func (p *Provider) Measure(ctx context.Context, m v1alpha1.Metric, t analysis.Target) (analysis.Value, error) {
	w := m.Provider.Web
	if w == nil {
		return analysis.Value{}, fmt.Errorf("metric %q has no web provider", m.Name)
	}
	path, err := spec.ParseJSONPath(w.JSONPath)
	if err != nil {
		return analysis.Value{}, err
	}
	timeout := DefaultTimeout
	if w.Timeout != nil {
		if timeout, err = analysis.Duration(w.Timeout); err != nil {
			return analysis.Value{}, fmt.Errorf("timeout: %w", err)
		}
	}
	url, err := analysis.Expand(w.URL, &m, t)
	if err != nil {
		return analysis.Value{}, fmt.Errorf("url: %w", err)
	}
	body, err := analysis.Expand(w.Body, &m, t)
	if err != nil {
		return analysis.Value{}, fmt.Errorf("body: %w", err)
	}
	method := w.Method
	if method == "" {
		method = http.MethodGet
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return analysis.Value{}, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range w.Headers {
		v, err := analysis.Expand(h.Value, &m, t)
		if err != nil {
			return analysis.Value{}, fmt.Errorf("header %s: %w", h.Key, err)
		}
		req.Header.Set(h.Key, v)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return analysis.Value{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return analysis.Value{}, fmt.Errorf("%s %s: read answer: %w", method, url, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return analysis.Value{}, fmt.Errorf("%s %s: status %d: %s", method, url, resp.StatusCode, excerpt(data))
	}
	if len(data) > maxBody {
		return analysis.Value{}, fmt.Errorf("%s %s: answer is larger than %d bytes", method, url, maxBody)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return analysis.Value{}, fmt.Errorf("%s %s: answer is not JSON: %w: %s", method, url, err, excerpt(data))
	}
	nodes := path.Select(doc)
	switch len(nodes) {
	case 0:
		return analysis.Value{}, fmt.Errorf("jsonPath %q selects nothing in %s", w.JSONPath, excerpt(data))
	case 1:
	default:
		return analysis.Value{}, fmt.Errorf("jsonPath %q selects %d values, want one", w.JSONPath, len(nodes))
	}
	return value(w.JSONPath, nodes[0])
}

// value turns the selected JSON value into a measurement.
func value(path string, v any) (analysis.Value, error) {
	switch x := v.(type) {
	case nil:
		return analysis.Value{Inconclusive: true, Text: fmt.Sprintf("no data (jsonPath %q is null)", path)}, nil
	case float64:
		return analysis.Value{Result: x}, nil
	case bool:
		if x {
			return analysis.Value{Result: 1, Text: "1 (true)"}, nil
		}
		return analysis.Value{Result: 0, Text: "0 (false)"}, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err == nil {
			return analysis.Value{Result: f}, nil
		}
	}
	b, _ := json.Marshal(v)
	return analysis.Value{}, fmt.Errorf("jsonPath %q selects %s, not a number", path, excerpt(b))
}

// excerpt is the start of an answer, on one line, for error messages.
func excerpt(b []byte) string {
	const max = 200
	b = bytes.TrimSpace(b)
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	if s == "" {
		return "(empty)"
	}
	return s
}
