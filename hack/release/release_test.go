package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"sigs.k8s.io/yaml"
)

// What `make release` and `make image` made; the Makefile's test-release target sets them.
// Without RAMP_DIST the tests skip: `go test` alone, outside make, has nothing to check.
var (
	distDir  = os.Getenv("RAMP_DIST")
	imageDir = os.Getenv("RAMP_IMAGE")
	version  = os.Getenv("RAMP_VERSION")
)

func needDist(t *testing.T) {
	t.Helper()
	if distDir == "" || version == "" {
		t.Skip("RAMP_DIST and RAMP_VERSION unset: run make test-release")
	}
}

// The release's binaries are static, stamped with the version, for each platform.
func TestBinaries(t *testing.T) {
	needDist(t)
	for _, p := range Platforms {
		path := filepath.Join(distDir, BinaryName(p))
		bi, err := buildinfo.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		goos, goarch, _ := strings.Cut(p, "/")
		if settings["GOOS"] != goos || settings["GOARCH"] != goarch || settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
			t.Errorf("%s: build settings %v; want %s, CGO_ENABLED=0 and -trimpath", path, settings, p)
		}
		// With -trimpath the go command leaves -ldflags out of the build info: look for the
		// version the -X set in the binary itself (and run it below where this machine can).
		if data, err := os.ReadFile(path); err != nil || !bytes.Contains(data, []byte(version)) {
			t.Errorf("%s: %v; the version %s is not in the binary", path, err, version)
		}
	}
	// The one this machine runs says its version.
	self := runtime.GOOS + "/" + runtime.GOARCH
	if !slices.Contains(Platforms, self) {
		return
	}
	out, err := exec.Command(filepath.Join(distDir, BinaryName(self)), "version", "-o", "json").Output()
	var info struct{ Version, Platform string }
	if err != nil || json.Unmarshal(out, &info) != nil || info.Version != version || info.Platform != self {
		t.Errorf("ramp version -o json: %v, %+v\n%s", err, info, out)
	}
}

// SHA256SUMS names every file of dist/ with its checksum, and nothing else.
func TestChecksums(t *testing.T) {
	needDist(t)
	data, err := os.ReadFile(filepath.Join(distDir, SumsFile))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		sumHex, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sumHex) != 64 {
			t.Fatalf("%s: line %q is not \"<sha256>  <file>\"", SumsFile, sc.Text())
		}
		b, err := os.ReadFile(filepath.Join(distDir, name))
		if err != nil {
			t.Errorf("%s names %s: %v", SumsFile, name, err)
			continue
		}
		if got := sum(b); got != sumHex {
			t.Errorf("%s: sha256 %s, %s says %s", name, got, SumsFile, sumHex)
		}
		listed[name] = true
	}
	entries, err := os.ReadDir(distDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != SumsFile && !listed[e.Name()] {
			t.Errorf("%s is not in %s", e.Name(), SumsFile)
		}
	}
	for _, p := range Platforms {
		for _, n := range []string{BinaryName(p), ArchiveName(version, p)} {
			if !listed[n] {
				t.Errorf("%s lacks %s", SumsFile, n)
			}
		}
	}
}

// Each archive holds the binary of its platform, LICENSE and NOTICE; the krew manifest points
// at the archives with their checksums.
func TestArchivesAndKrewManifest(t *testing.T) {
	needDist(t)
	for _, p := range Platforms {
		files := untar(t, filepath.Join(distDir, ArchiveName(version, p)))
		bin, err := os.ReadFile(filepath.Join(distDir, BinaryName(p)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(files["ramp"], bin) || len(files["LICENSE"]) == 0 || len(files["NOTICE"]) == 0 {
			t.Errorf("%s: files %v; want ramp (equal to %s), LICENSE and NOTICE", ArchiveName(version, p), keys(files), BinaryName(p))
		}
	}

	data, err := os.ReadFile(filepath.Join(distDir, KrewFile))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Kind     string
		Metadata struct{ Name string }
		Spec     struct {
			Version   string
			Platforms []struct {
				Selector struct{ MatchLabels map[string]string }
				URI      string
				Sha256   string
				Bin      string
			}
		}
	}
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.Kind != "Plugin" || m.Metadata.Name != "ramp" || m.Spec.Version != version || len(m.Spec.Platforms) != len(Platforms) {
		t.Fatalf("krew manifest: %+v", m)
	}
	for _, pl := range m.Spec.Platforms {
		p := pl.Selector.MatchLabels["os"] + "/" + pl.Selector.MatchLabels["arch"]
		archive := ArchiveName(version, p)
		b, err := os.ReadFile(filepath.Join(distDir, archive))
		if err != nil {
			t.Errorf("krew platform %s: %v", p, err)
			continue
		}
		if !strings.HasSuffix(pl.URI, "/"+version+"/"+archive) || pl.Sha256 != sum(b) || pl.Bin != "ramp" {
			t.Errorf("krew platform %s: uri %s, sha256 %s, bin %s; want .../%s/%s, %s, ramp", p, pl.URI, pl.Sha256, pl.Bin, version, archive, sum(b))
		}
	}
}

// The image: one manifest per linux platform, ramp as entrypoint, run as 65532, the very
// binary `make release` built, and nothing else but the license files (no shell).
func TestImage(t *testing.T) {
	needDist(t)
	if imageDir == "" {
		t.Skip("RAMP_IMAGE unset: run make test-release")
	}
	lp, err := layout.FromPath(imageDir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	topm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(topm.Manifests) != 1 || topm.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != version {
		t.Fatalf("index.json: %+v; want one index named %s", topm.Manifests, version)
	}
	idx, err := top.ImageIndex(topm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Fatalf("manifest %s has no platform", d.Digest)
		}
		p := d.Platform.OS + "/" + d.Platform.Architecture
		platforms = append(platforms, p)
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS+"/"+cf.Architecture != p || !slices.Equal(cf.Config.Entrypoint, []string{"/ramp"}) || cf.Config.User != "65532:65532" ||
			cf.Config.Labels["org.opencontainers.image.version"] != version {
			t.Errorf("%s: config %s/%s, entrypoint %q, user %q, labels %v; want entrypoint /ramp, user 65532:65532, version %s",
				p, cf.OS, cf.Architecture, cf.Config.Entrypoint, cf.Config.User, cf.Config.Labels, version)
		}
		files := imageFiles(t, img)
		want, err := os.ReadFile(filepath.Join(distDir, BinaryName(p)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(files["ramp"], want) {
			t.Errorf("%s: /ramp (%d bytes, sha256 %s) is not dist/%s (sha256 %s)", p, len(files["ramp"]), sum(files["ramp"]), BinaryName(p), sum(want))
		}
		if names := keys(files); !slices.Equal(names, []string{"licenses/LICENSE", "licenses/NOTICE", "ramp"}) {
			t.Errorf("%s: files %v; want only /ramp and the licenses (no shell)", p, names)
		}
	}
	slices.Sort(platforms)
	if !slices.Equal(platforms, ImagePlatforms) {
		t.Errorf("image platforms %v, want %v", platforms, ImagePlatforms)
	}
}

// imageFiles returns the regular files of img's layers with their contents, checking that
// the binary is executable.
func imageFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		readTar(t, rc, files)
		rc.Close()
	}
	return files
}

func untar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	files := map[string][]byte{}
	readTar(t, zr, files)
	return files
}

func readTar(t *testing.T, r io.Reader, files map[string][]byte) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			if h.Typeflag != tar.TypeDir {
				t.Errorf("%s: type %c; want only files and directories", h.Name, h.Typeflag)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "/")
		if name == "ramp" && h.Mode&0o111 == 0 {
			t.Errorf("ramp: mode %o, not executable", h.Mode)
		}
		files[name] = b
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
