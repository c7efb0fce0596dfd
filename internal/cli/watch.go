package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"ramp.dev/ramp/api/v1alpha1"
)

// ANSI sequences of the in-place redraw.
const (
	ansiClearLine = "\x1b[2K"
	ansiClearDown = "\x1b[J"
)

// ansiUp moves the cursor n lines up, to the first column.
func ansiUp(n int) string { return fmt.Sprintf("\r\x1b[%dA", n) }

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// terminalWidth is w's width in columns, or 0 if unknown.
func terminalWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if width, _, err := term.GetSize(int(f.Fd())); err == nil {
			return width
		}
	}
	return 0
}

// clip cuts s to width runes (0: no limit): a line wider than the terminal would wrap, and
// the redraw would go up too few lines.
func clip(s string, width int) string {
	if r := []rune(s); width > 0 && len(r) > width {
		return string(r[:width])
	}
	return s
}

// realTicker waits for the next tick of a time.Ticker, or for ctx to end.
func realTicker(d time.Duration) (wait func(ctx context.Context) error, stop func()) {
	t := time.NewTicker(d)
	return func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}, t.Stop
}

// watchMaxFailures is how many polls in a row may fail before get --watch gives up.
const watchMaxFailures = 5

// watchGet redraws `get` every interval until ctx ends (Ctrl-C), which is not an error.
// fetch returns the rollouts to show. On a terminal the frame is redrawn in place; otherwise
// a block headed by a timestamp is written each time the rollouts change (ages aside).
func (a *app) watchGet(ctx context.Context, fetch func(context.Context) ([]v1alpha1.Rollout, error), one, wide, namespaces bool, interval time.Duration) error {
	tty := a.isTerminal != nil && a.isTerminal(a.stdout)
	newTicker := a.ticker
	if newTicker == nil {
		newTicker = realTicker
	}
	wait, stop := newTicker(interval)
	defer stop()
	width := 0
	if tty && a.termWidth != nil {
		width = a.termWidth(a.stdout)
	}
	lines := 0                   // lines of the frame on screen
	last := ""                   // the last block written, without ages, off a terminal
	var shown []v1alpha1.Rollout // the last rollouts fetched
	failed := 0                  // polls failed in a row
	for {
		rs, err := fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The first poll's error (a rollout that does not exist, no server) ends the
			// watch at once; a later one (a restarting controller, an API server hiccup) is
			// shown and polled again, up to watchMaxFailures in a row.
			failed++
			if shown == nil || failed >= watchMaxFailures {
				return err
			}
			rs = shown
		} else {
			shown, failed = rs, 0
		}
		now := a.now()
		note := ""
		if err != nil {
			note = fmt.Sprintf("error: %s (poll %d of %d failed in a row; retrying)\n", err, failed, watchMaxFailures)
		}
		if tty {
			frame := a.watchFrame(rs, one, wide, namespaces, now) + note
			header := fmt.Sprintf("Every %s: ramp get --watch (Ctrl-C to stop)   %s", interval, now.UTC().Format(time.RFC3339))
			body := strings.Split(strings.TrimSuffix(header+"\n"+frame, "\n"), "\n")
			var b strings.Builder
			if lines > 0 {
				b.WriteString(ansiUp(lines))
			}
			for _, l := range body {
				b.WriteString(ansiClearLine + clip(l, width) + "\n")
			}
			b.WriteString(ansiClearDown)
			if _, err := io.WriteString(a.stdout, b.String()); err != nil {
				return err
			}
			lines = len(body)
		} else if key := a.watchFrame(rs, one, wide, namespaces, time.Time{}) + note; key != last {
			frame := a.watchFrame(rs, one, wide, namespaces, now) + note
			if _, err := fmt.Fprintf(a.stdout, "--- %s\n%s", now.UTC().Format(time.RFC3339), frame); err != nil {
				return err
			}
			last = key
		}
		if err := wait(ctx); err != nil {
			if errors.Is(err, context.Canceled) || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// watchFrame is what `get --watch` shows at now: the table and, for one rollout, its
// revisions and analysis runs (the judge among them). A zero now shows no ages.
func (a *app) watchFrame(rs []v1alpha1.Rollout, one, wide, namespaces bool, now time.Time) string {
	var b bytes.Buffer
	if len(rs) == 0 {
		b.WriteString("No rollouts.\n")
		return b.String()
	}
	a.printTable(&b, rs, wide, namespaces, now)
	if one {
		r := &rs[0]
		if len(r.Status.Revisions) > 0 {
			b.WriteString("\n")
			w := tabwriter.NewWriter(&b, 0, 8, 3, ' ', 0)
			fmt.Fprintln(w, "REVISION\tROLE\tWEIGHT\tREADY\tAVAILABLE")
			for _, rv := range r.Status.Revisions {
				fmt.Fprintf(w, "%d\t%s\t%d%%\t%d/%d\t%d\n", rv.Revision, rv.Role, rv.Weight, rv.Ready, rv.Desired, rv.Available)
			}
			w.Flush()
		}
		a.printAnalysis(&b, r, wide)
		if msg := r.Status.Message; msg != "" && !wide {
			fmt.Fprintf(&b, "\nMessage: %s\n", a.hints(msg))
		}
	}
	return b.String()
}
