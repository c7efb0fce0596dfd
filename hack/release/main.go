// Command release packs the binaries `make release` built into what a release publishes,
// without Docker:
//
//	release archives -version V -dist DIR -url URL   tar.gz archives, the krew manifest, SHA256SUMS
//	release image -version V -dist DIR -out DIR        the multi-arch OCI image layout
//
// DIR (dist/) holds the static binaries ramp-<os>-<arch> and gets the rest. The image is
// ramp's linux binaries, each alone on an empty base (no shell, no libc: ramp is built with
// CGO_ENABLED=0), run as uid 65532, with LICENSE and NOTICE under /licenses.
//
// It is its own module so that go-containerregistry stays out of ramp's go.mod.
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Platforms are what `make release` builds; ImagePlatforms the ones in the image. The
// environment's RAMP_RELEASE_PLATFORMS (space-separated, the Makefile's RELEASE_PLATFORMS) sets
// fewer: `make test` checks the linux ones only.
var (
	Platforms      = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"}
	ImagePlatforms = []string{"linux/amd64", "linux/arm64"}
)

func init() {
	if v := strings.Fields(os.Getenv("RAMP_RELEASE_PLATFORMS")); len(v) > 0 {
		Platforms = v
	}
}

// onlyBuilt drops from the krew template the platform entries ("  - selector:" blocks, each
// naming its {{SHA256_<os>_<arch>}}) of platforms not in Platforms, for a release of fewer.
func onlyBuilt(tmpl string) string {
	head, rest, ok := strings.Cut(tmpl, "\n  - selector:")
	if !ok {
		return tmpl
	}
	out := head
	for _, block := range strings.Split("  - selector:"+rest, "\n  - selector:") {
		block = strings.TrimPrefix(block, "  - selector:")
		keep := true
		if i := strings.Index(block, "{{SHA256_"); i >= 0 {
			key, _, _ := strings.Cut(block[i+len("{{SHA256_"):], "}}")
			keep = slices.Contains(Platforms, strings.Replace(key, "_", "/", 1))
		}
		if keep {
			out += "\n  - selector:" + block
		}
	}
	return out
}

// Image settings the test checks.
const (
	ImageBinary = "/ramp"
	ImageUser   = "65532:65532"
	SumsFile    = "SHA256SUMS"
	KrewFile    = "ramp.yaml" // the filled krew manifest in dist/
)

// BinaryName is the name of a built binary in dist/.
func BinaryName(platform string) string { return "ramp-" + strings.ReplaceAll(platform, "/", "-") }

// ArchiveName is the name of a release archive in dist/.
func ArchiveName(version, platform string) string {
	return "ramp_" + version + "_" + strings.ReplaceAll(platform, "/", "_") + ".tar.gz"
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: release archives|image [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	version := fs.String("version", "", "the release version, e.g. v1.2.3")
	dist := fs.String("dist", "dist", "directory of the built binaries; archives and sums are written there")
	out := fs.String("out", "bin/image", "image: directory of the OCI layout to write (replaced)")
	url := fs.String("url", "", "archives: URL the archives are published under (the krew manifest's uri is URL/ARCHIVE)")
	krew := fs.String("krew", "plugins/ramp.yaml", "archives: the krew manifest template")
	root := fs.String("root", ".", "the repository (LICENSE, NOTICE)")
	fs.Parse(os.Args[2:])
	if *version == "" {
		fail(fmt.Errorf("-version is required"))
	}
	var err error
	switch os.Args[1] {
	case "archives":
		err = archives(*version, *dist, *url, *krew, *root)
	case "image":
		err = image(*version, *dist, *out, *root)
	default:
		err = fmt.Errorf("unknown command %q: want archives or image", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "release:", err)
	os.Exit(1)
}

// sourceTime is the time stamped on archive entries and the image: the commit's
// (SOURCE_DATE_EPOCH), else the Unix epoch, so that equal inputs give equal outputs.
func sourceTime() time.Time {
	var sec int64
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		fmt.Sscan(v, &sec)
	}
	return time.Unix(sec, 0).UTC()
}

type file struct {
	name string
	mode int64
	data []byte
}

// tarFiles writes files as a tar stream, directories first where a name needs one.
func tarFiles(w io.Writer, files []file) error {
	tw := tar.NewWriter(w)
	mt := sourceTime()
	dirs := map[string]bool{}
	for _, f := range files {
		if d := filepath.Dir(f.name); d != "." && !dirs[d] {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mt, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: mt, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

func readAll(paths ...string) ([][]byte, error) {
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// archives writes a tar.gz per platform (ramp, LICENSE, NOTICE), the krew manifest filled in
// with the version, URL and archive checksums, and SHA256SUMS of every binary and archive.
func archives(version, dist, url, krewTemplate, root string) error {
	docs, err := readAll(filepath.Join(root, "LICENSE"), filepath.Join(root, "NOTICE"))
	if err != nil {
		return err
	}
	sums := map[string]string{}
	for _, p := range Platforms {
		bin, err := os.ReadFile(filepath.Join(dist, BinaryName(p)))
		if err != nil {
			return fmt.Errorf("%w (run make release)", err)
		}
		sums[BinaryName(p)] = sum(bin)
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		err = tarFiles(zw, []file{{"ramp", 0o755, bin}, {"LICENSE", 0o644, docs[0]}, {"NOTICE", 0o644, docs[1]}})
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			return err
		}
		name := ArchiveName(version, p)
		if err := os.WriteFile(filepath.Join(dist, name), buf.Bytes(), 0o644); err != nil {
			return err
		}
		sums[name] = sum(buf.Bytes())
	}

	tmpl, err := os.ReadFile(krewTemplate)
	if err != nil {
		return err
	}
	repl := []string{"{{VERSION}}", version, "{{URL}}", strings.TrimSuffix(url, "/")}
	for _, p := range Platforms {
		key := strings.ReplaceAll(p, "/", "_")
		repl = append(repl, "{{SHA256_"+key+"}}", sums[ArchiveName(version, p)])
	}
	manifest := strings.NewReplacer(repl...).Replace(onlyBuilt(string(tmpl)))
	if i := strings.Index(manifest, "{{"); i >= 0 {
		return fmt.Errorf("%s: placeholder left unfilled: %.40s", krewTemplate, manifest[i:])
	}
	if err := os.WriteFile(filepath.Join(dist, KrewFile), []byte(manifest), 0o644); err != nil {
		return err
	}
	sums[KrewFile] = sum([]byte(manifest))

	var names []string
	for n := range sums {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n) // sha256sum's format: sha256sum -c SHA256SUMS checks it
	}
	return os.WriteFile(filepath.Join(dist, SumsFile), []byte(b.String()), 0o644)
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// image writes the OCI image layout: an index of one image per ImagePlatforms.
func image(version, dist, out, root string) error {
	docs, err := readAll(filepath.Join(root, "LICENSE"), filepath.Join(root, "NOTICE"))
	if err != nil {
		return err
	}
	created := v1.Time{Time: sourceTime()}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range ImagePlatforms {
		bin, err := os.ReadFile(filepath.Join(dist, BinaryName(p)))
		if err != nil {
			return fmt.Errorf("%w (make image builds it)", err)
		}
		var tb bytes.Buffer
		err = tarFiles(&tb, []file{
			{strings.TrimPrefix(ImageBinary, "/"), 0o755, bin},
			{"licenses/LICENSE", 0o644, docs[0]},
			{"licenses/NOTICE", 0o644, docs[1]},
		})
		if err != nil {
			return err
		}
		data := tb.Bytes()
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return err
		}
		img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
			Layer:     layer,
			History:   v1.History{CreatedBy: "ramp release image: " + BinaryName(p), Created: created},
			MediaType: types.OCILayer,
		})
		if err != nil {
			return err
		}
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		cf, err := img.ConfigFile()
		if err != nil {
			return err
		}
		cf = cf.DeepCopy()
		osName, arch, _ := strings.Cut(p, "/")
		cf.OS, cf.Architecture, cf.Created = osName, arch, created
		cf.Config.Entrypoint = []string{ImageBinary}
		cf.Config.Cmd = []string{"controller"}
		cf.Config.User = ImageUser
		cf.Config.WorkingDir = "/"
		cf.Config.Labels = map[string]string{
			"org.opencontainers.image.title":    "ramp",
			"org.opencontainers.image.version":  version,
			"org.opencontainers.image.licenses": "Apache-2.0",
			"org.opencontainers.image.source":   "ramp.dev/ramp",
		}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: osName, Architecture: arch}},
		})
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	lp, err := layout.Write(out, empty.Index)
	if err != nil {
		return err
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": version})); err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "%s: OCI image layout, index %s (%s), user %s\n", out, d, strings.Join(ImagePlatforms, ", "), ImageUser)
	return w.Flush()
}
