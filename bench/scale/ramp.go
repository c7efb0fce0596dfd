package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"
)

// rampProc is the ramp process a run measures: what both runs do with it, the mode aside.
type rampProc struct {
	pid     int
	name    string // "ramp serve", "ramp controller"
	logName string // "ramp's log", "controller's log"
	logFile string
}

// fail adds the end of ramp's log to err.
func (p rampProc) fail(err error) error {
	return fmt.Errorf("%w\n%s (end):\n%s", err, p.logName, tailFile(p.logFile, 3000))
}

// alive wraps a waitUntil condition: it fails once ramp has exited.
func (p rampProc) alive(cond func() (bool, string, error)) func() (bool, string, error) {
	return func() (bool, string, error) {
		if exited(p.pid) {
			return false, "", fmt.Errorf("%s exited", p.name)
		}
		return cond()
	}
}

// waitServing waits until url answers 200 OK, then returns ramp's idle RSS.
func (p rampProc) waitServing(ctx context.Context, what, url string, within, interval time.Duration) (int64, error) {
	if err := waitUntil(ctx, what, within, interval, p.alive(func() (bool, string, error) {
		resp, err := http.Get(url)
		if err != nil {
			return false, err.Error(), nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status, nil
	})); err != nil {
		return 0, p.fail(err)
	}
	rss, err := idleRSS(ctx, p.pid)
	if err != nil {
		return 0, p.fail(err)
	}
	return rss, nil
}

// idleWindow waits until check holds (all rollouts settled), warms up, measures ramp for
// -seconds and checks again that nothing changed; loads are the load averages before and after.
// what names the rollouts ("rollouts", "Rollouts"), since what started them.
func (p rampProc) idleWindow(ctx context.Context, what, since string, start time.Time, interval time.Duration,
	check func() (bool, string, error), metricsURL, pprofAddr string, others map[string]int,
) (m measured, loads [2]string, err error) {
	check = p.alive(check)
	if err := waitUntil(ctx, "all "+what+" settled", *settleWait, interval, check); err != nil {
		return m, loads, p.fail(err)
	}
	log.Printf("all %d %s settled %s after %s; warming up %s, then measuring %ds", *rollouts, what, time.Since(start).Round(time.Second), since, *warmup, *seconds)
	if err := sleep(ctx, *warmup); err != nil {
		return m, loads, err
	}
	var prof func(context.Context, time.Duration) error
	if pprofAddr != "" {
		prof = pprofProfile(pprofAddr)
	}
	loads[0] = loadAverage()
	m, err = measure(ctx, p.pid, time.Duration(*seconds)*time.Second, metricsURL, prof, others)
	if err != nil {
		return m, loads, p.fail(err)
	}
	loads[1] = loadAverage()
	// Nothing may have changed: every rollout still settled on its first revision.
	if ok, state, err := check(); err != nil || !ok {
		return m, loads, p.fail(fmt.Errorf("after the window, not all %s settled any more (%s): %v", what, state, err))
	}
	return m, loads, nil
}
