package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.99.1",
		Main:      debug.Module{Path: "ramp.dev/ramp", Version: "v0.3.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-11-30T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	read := func() (*debug.BuildInfo, bool) { return bi, true }
	platform := runtime.GOOS + "/" + runtime.GOARCH

	// Without the release's -X, the module version and the VCS stamp.
	got := get("", read)
	want := Info{Version: "v0.3.0", Revision: bi.Settings[0].Value, Time: "2026-11-30T10:00:00Z", Modified: true, GoVersion: "go1.99.1", Platform: platform}
	if got != want {
		t.Errorf("get = %+v, want %+v", got, want)
	}
	text := got.String()
	for _, line := range []string{"ramp v0.3.0\n", "  commit:   " + bi.Settings[0].Value + " (modified)\n", "  time:     2026-11-30T10:00:00Z\n", "  go:       go1.99.1\n", "  platform: " + platform + "\n"} {
		if !strings.Contains(text, line) {
			t.Errorf("String() lacks %q:\n%s", line, text)
		}
	}

	// The release's version wins over the module's.
	if got := get("v1.2.3", read); got.Version != "v1.2.3" || got.Revision != want.Revision {
		t.Errorf("with -X: %+v", got)
	}
	// No build info at all (a test binary may have none): still a version, Go and platform.
	got = get("", func() (*debug.BuildInfo, bool) { return nil, false })
	if got.Version != "(devel)" || got.GoVersion != runtime.Version() || got.Platform != platform || strings.Contains(got.String(), "commit:") {
		t.Errorf("without build info: %+v\n%s", got, got.String())
	}
}
