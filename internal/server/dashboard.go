package server

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strings"

	"ramp.dev/ramp/internal/control"
)

// The dashboard's page, script and style sheet: plain files, embedded, no build step and no
// CDN (many machines that run ramp have no internet).
//
//go:embed dashboard
var dashboardFiles embed.FS

// DashboardPath is where the dashboard is served.
const DashboardPath = "/dashboard/"

// errNoSeries answers /series in a mode that does not measure traffic itself.
var errNoSeries = fmt.Errorf("%w: Kubernetes mode's numbers are in Prometheus", control.ErrNoSeries)

// dashboard adds the dashboard's page and its read API to mux. The page's read API
// (/dashboard/api/...) needs no token: it answers views built field by field from what is
// safe to show (see view.go); the page's buttons post to /api/v1 with the token the user gives
// it. The Host and Origin checks of New apply as everywhere.
func (a *api) dashboard(mux *http.ServeMux) {
	static, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic(err) // the embedded directory is there at build time
	}
	files := http.StripPrefix(DashboardPath, http.FileServerFS(static))
	mux.Handle("GET "+DashboardPath, pageHeaders(files))
	mux.Handle("GET /{$}", http.RedirectHandler(DashboardPath, http.StatusFound))
	mux.HandleFunc("GET /dashboard/api/rollouts", a.dashList)
	mux.HandleFunc("GET /dashboard/api/rollouts/{name}", a.dashRollout)
	mux.HandleFunc("GET /dashboard/api/rollouts/{name}/series", a.series)
	mux.Handle("GET /api/v1/rollouts/{name}/series", a.auth(a.series))
}

// pageHeaders keeps the page to itself: its own scripts and styles only, never in a frame of
// another site, and no Referer (the URL may carry ?token= once).
func pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

func (a *api) dashList(w http.ResponseWriter, r *http.Request) {
	rs, err := a.b.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]RolloutSummary, 0, len(rs))
	for i := range rs {
		out = append(out, summarize(&rs[i]))
	}
	slices.SortFunc(out, func(x, y RolloutSummary) int { return strings.Compare(x.Name, y.Name) })
	writeJSON(w, http.StatusOK, out)
}

func (a *api) dashRollout(w http.ResponseWriter, r *http.Request) {
	ctx, name := r.Context(), r.PathValue("name")
	ro, err := a.b.Get(ctx, name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	history, err := a.b.History(ctx, name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	events, err := a.b.Events(ctx, name, 0)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(ro, history, events))
}

// series answers the rollout's recent per-revision series, or 501 in a mode without them.
func (a *api) series(w http.ResponseWriter, r *http.Request) {
	src, ok := a.b.(control.SeriesSource)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, errorBody{Error: errNoSeries.Error()})
		return
	}
	s, err := src.Series(r.Context(), r.PathValue("name"))
	if errors.Is(err, control.ErrNoSeries) {
		writeJSON(w, http.StatusNotImplemented, errorBody{Error: err.Error()})
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}
