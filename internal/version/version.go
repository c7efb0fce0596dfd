// Package version says which ramp this is: the version a release sets with
//
//	-ldflags "-X ramp.dev/ramp/internal/version.Version=v1.2.3"
//
// else the module version and VCS stamp the go command records in the binary
// (runtime/debug.ReadBuildInfo): `go install ramp.dev/ramp/cmd/ramp@v1.2.3` records v1.2.3, a
// build in a git checkout records the commit, its time and whether the tree was modified.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is set at release by the linker (-X). Empty means: take it from the build info.
var Version string

// Info is what `ramp version` prints.
type Info struct {
	// Version is the release version (v1.2.3), the module version go install recorded, or
	// "(devel)" for a build in a checkout.
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from, when the go command recorded it.
	Revision string `json:"revision,omitempty"`
	// Time is the commit's time (RFC 3339), when recorded.
	Time string `json:"time,omitempty"`
	// Modified is true when the checkout had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"goVersion"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
}

// Get returns the version of the running binary.
func Get() Info {
	return get(Version, debug.ReadBuildInfo)
}

func get(ldflag string, read func() (*debug.BuildInfo, bool)) Info {
	info := Info{
		Version:   ldflag,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi, ok := read(); ok {
		if info.Version == "" {
			info.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.time":
				info.Time = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	return info
}

// String is the multi-line text `ramp version` prints.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ramp %s\n", i.Version)
	if i.Revision != "" {
		rev := i.Revision
		if i.Modified {
			rev += " (modified)"
		}
		fmt.Fprintf(&b, "  commit:   %s\n", rev)
	}
	if i.Time != "" {
		fmt.Fprintf(&b, "  time:     %s\n", i.Time)
	}
	fmt.Fprintf(&b, "  go:       %s\n", i.GoVersion)
	fmt.Fprintf(&b, "  platform: %s\n", i.Platform)
	return b.String()
}
