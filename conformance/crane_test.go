package conformance

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestCrane builds an image with `crane append` from a tar made here (pushed directly, and
// written as a tarball then pushed with `crane push`), exports its filesystem back
// byte-identical, copies it between repositories keeping the digest, round-trips it through
// an OCI layout, tags, lists tags and the catalog, validates every blob, and deletes.
func TestCrane(t *testing.T) {
	t.Parallel()
	bin := testenv.RequireTool(t, "crane")
	eachBackend(t, func(t *testing.T, srv *testenv.Server) {
		dir := t.TempDir()
		crane := tool{Path: bin, Dir: dir}
		reg := srv.RegistryAddr
		payload := randomBytes(3<<20 + 17)
		hello := []byte("hello from crane\n")
		writeFile(t, filepath.Join(dir, "layer.tar"), buildTar(t, []tarEntry{
			{Name: "app/", Dir: true, Mode: 0o755},
			{Name: "app/payload.bin", Mode: 0o644, Data: payload},
			{Name: "app/hello.txt", Mode: 0o644, Data: hello},
		}))

		// crane append: straight to the registry.
		crane.must(t, "append", "--insecure", "--oci-empty-base", "-f", "layer.tar", "-t", reg+"/crane/src:v1")
		src := digest.Digest(strings.TrimSpace(crane.must(t, "digest", "--insecure", reg+"/crane/src:v1")))
		status, manifest, _ := getManifest(t, srv.URL(), "crane/src", "v1")
		if status != 200 || digest.FromBytes(manifest) != src {
			t.Fatalf("GET manifest crane/src:v1: %d, digest %s; crane digest says %s", status, digest.FromBytes(manifest), src)
		}
		if got := crane.must(t, "manifest", "--insecure", reg+"/crane/src@"+src.String()); got != string(manifest) {
			t.Fatalf("crane manifest differs from the bytes the server serves:\n%s\n%s", got, manifest)
		}
		crane.must(t, "validate", "--insecure", "--remote", reg+"/crane/src:v1")
		crane.must(t, "export", "--insecure", reg+"/crane/src:v1", "fs.tar")
		requireTarFiles(t, filepath.Join(dir, "fs.tar"), map[string][]byte{"app/payload.bin": payload, "app/hello.txt": hello})

		// crane append -o: a tarball, pushed with crane push.
		crane.must(t, "append", "--oci-empty-base", "-f", "layer.tar", "-t", reg+"/crane/fromtar:v1", "-o", "image.tar")
		requireManifestGone(t, srv.URL(), "crane/fromtar", "v1") // -o writes the tarball only
		crane.must(t, "push", "--insecure", "image.tar", reg+"/crane/fromtar:v1")
		crane.must(t, "validate", "--insecure", "--remote", reg+"/crane/fromtar:v1")
		if a, b := crane.must(t, "config", "--insecure", reg+"/crane/fromtar:v1"), crane.must(t, "config", "--insecure", reg+"/crane/src:v1"); a != b {
			t.Errorf("config of the pushed tarball differs from the appended image:\n%s\n%s", a, b)
		}

		// crane copy within the server keeps the digest and the bytes.
		crane.must(t, "copy", "--insecure", reg+"/crane/src:v1", reg+"/crane/dst:v1")
		if got := strings.TrimSpace(crane.must(t, "digest", "--insecure", reg+"/crane/dst:v1")); got != src.String() {
			t.Fatalf("crane copy: destination digest %s, want %s", got, src)
		}
		crane.must(t, "tag", "--insecure", reg+"/crane/dst:v1", "v2")
		if got := strings.Fields(crane.must(t, "ls", "--insecure", reg+"/crane/dst")); !slices.Equal(got, []string{"v1", "v2"}) {
			t.Errorf("crane ls crane/dst: %q, want [v1 v2]", got)
		}

		// OCI layout round trip: pull to a layout, push it back under a new name.
		crane.must(t, "pull", "--insecure", "--format", "oci", reg+"/crane/src:v1", "layout")
		crane.must(t, "push", "--insecure", "layout", reg+"/crane/fromlayout:v1")
		if got := strings.TrimSpace(crane.must(t, "digest", "--insecure", reg+"/crane/fromlayout:v1")); got != src.String() {
			t.Fatalf("crane push of an OCI layout: digest %s, want %s", got, src)
		}
		for _, l := range manifestLayers(t, manifest) {
			want := readLayoutBlob(t, filepath.Join(dir, "layout"), l)
			if got := crane.must(t, "blob", "--insecure", reg+"/crane/fromlayout@"+l.String()); got != string(want) {
				t.Fatalf("crane blob %s: %d bytes differ from the layout's %d", l, len(got), len(want))
			}
		}

		catalog := strings.Fields(crane.must(t, "catalog", "--insecure", reg))
		for _, r := range []string{"crane/dst", "crane/fromlayout", "crane/fromtar", "crane/src"} {
			if !slices.Contains(catalog, r) {
				t.Errorf("crane catalog %q lacks %s", catalog, r)
			}
		}

		// crane delete by digest removes the manifest and both tags at once; others keep it.
		crane.must(t, "delete", "--insecure", reg+"/crane/dst@"+src.String())
		requireManifestGone(t, srv.URL(), "crane/dst", src.String())
		requireManifestGone(t, srv.URL(), "crane/dst", "v1")
		requireManifestGone(t, srv.URL(), "crane/dst", "v2")
		crane.mustFail(t, "manifest", "--insecure", reg+"/crane/dst:v1")
		crane.must(t, "validate", "--insecure", "--remote", reg+"/crane/src:v1")

		// crane delete by tag (resolves then deletes the manifest).
		crane.must(t, "delete", "--insecure", reg+"/crane/fromtar:v1")
		requireManifestGone(t, srv.URL(), "crane/fromtar", "v1")
	})
}

// manifestLayers returns the layer digests of an image manifest.
func manifestLayers(t *testing.T, manifest []byte) []digest.Digest {
	t.Helper()
	var m struct {
		Layers []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"layers"`
	}
	decodeJSON(t, string(manifest), &m)
	var out []digest.Digest
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	if len(out) == 0 {
		t.Fatalf("manifest has no layers: %s", manifest)
	}
	return out
}

// requireTarFiles fails unless the tar at path holds each file with exactly these bytes.
func requireTarFiles(t *testing.T, path string, want map[string][]byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := readTar(t, data)
	for name, w := range want {
		if g, ok := got[name]; !ok || !bytes.Equal(g, w) {
			t.Errorf("%s: %s: %d bytes (present %v), want %d identical bytes", path, name, len(g), ok, len(w))
		}
	}
}
