package conformance

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestSkopeo copies an image made here as an OCI layout into the server with skopeo (which
// uploads with one streamed PATCH), back out to an oci: layout and a dir:, from the dir: into
// another repository and between repositories; every blob and the manifest stay
// byte-identical (--preserve-digests).
func TestSkopeo(t *testing.T) {
	t.Parallel()
	bin := testenv.RequireTool(t, "skopeo")
	eachBackend(t, func(t *testing.T, srv *testenv.Server) {
		dir := t.TempDir()
		skopeo := tool{Path: bin, Dir: dir, Env: []string{"TMPDIR=" + t.TempDir()}}
		copyArgs := func(args ...string) []string {
			return append([]string{"--insecure-policy", "copy", "--quiet", "--preserve-digests"}, args...)
		}
		reg := "docker://" + srv.RegistryAddr

		big := buildTar(t, []tarEntry{{Name: "data/random.bin", Mode: 0o644, Data: randomBytes(5<<20 + 3)}})
		small := buildTar(t, []tarEntry{{Name: "etc/motd", Mode: 0o644, Data: []byte("skopeo was here\n")}})
		img := newImage(t, []blob{
			{ocispec.MediaTypeImageLayerGzip, gzipBytes(t, big)},
			{ocispec.MediaTypeImageLayer, small},
		}, []digest.Digest{digest.FromBytes(big), digest.FromBytes(small)})
		want := img.writeLayout(t, filepath.Join(dir, "src"), "v1")

		// oci: layout -> registry.
		skopeo.must(t, copyArgs("--dest-tls-verify=false", "oci:src:v1", reg+"/skopeo/img:v1")...)
		requireImage(t, srv.URL(), "skopeo/img", "v1", img)

		var inspect struct{ Digest digest.Digest }
		if err := json.Unmarshal([]byte(skopeo.must(t, "inspect", "--tls-verify=false", reg+"/skopeo/img:v1")), &inspect); err != nil || inspect.Digest != want {
			t.Errorf("skopeo inspect: digest %s (%v), want %s", inspect.Digest, err, want)
		}
		if raw := skopeo.must(t, "inspect", "--raw", "--tls-verify=false", reg+"/skopeo/img:v1"); raw != string(img.Manifest) {
			t.Errorf("skopeo inspect --raw differs from the pushed manifest:\n%s\n%s", raw, img.Manifest)
		}

		// registry -> oci: layout.
		skopeo.must(t, copyArgs("--src-tls-verify=false", reg+"/skopeo/img:v1", "oci:back:v1")...)
		if got := layoutManifest(t, filepath.Join(dir, "back"), "v1"); got != want {
			t.Fatalf("oci: layout from the registry names %s, want %s", got, want)
		}
		for _, b := range append([][]byte{img.Manifest, img.Config}, img.Layers...) {
			if got := readLayoutBlob(t, filepath.Join(dir, "back"), digest.FromBytes(b)); !bytes.Equal(got, b) {
				t.Fatalf("oci: layout blob %s differs", digest.FromBytes(b))
			}
		}

		// registry -> dir:, then dir: -> another repository.
		skopeo.must(t, copyArgs("--src-tls-verify=false", reg+"/skopeo/img:v1", "dir:dirout")...)
		requireDirImage(t, filepath.Join(dir, "dirout"), img)
		skopeo.must(t, copyArgs("--dest-tls-verify=false", "dir:dirout", reg+"/skopeo/fromdir:v1")...)
		requireImage(t, srv.URL(), "skopeo/fromdir", "v1", img)

		// registry -> registry (the blobs are mounted or re-sent; the result is the same).
		skopeo.must(t, copyArgs("--src-tls-verify=false", "--dest-tls-verify=false", reg+"/skopeo/img:v1", reg+"/skopeo/copy:v2")...)
		requireImage(t, srv.URL(), "skopeo/copy", "v2", img)

		var tags struct{ Tags []string }
		if err := json.Unmarshal([]byte(skopeo.must(t, "list-tags", "--tls-verify=false", reg+"/skopeo/copy")), &tags); err != nil || !slices.Equal(tags.Tags, []string{"v2"}) {
			t.Errorf("skopeo list-tags: %v (%v), want [v2]", tags.Tags, err)
		}
		skopeo.must(t, "delete", "--tls-verify=false", reg+"/skopeo/fromdir:v1")
		requireManifestGone(t, srv.URL(), "skopeo/fromdir", "v1")
		requireManifestGone(t, srv.URL(), "skopeo/fromdir", want.String())
		requireImage(t, srv.URL(), "skopeo/img", "v1", img)
	})
}

// requireImage checks that repo:tag serves exactly the image's manifest, config and layers.
func requireImage(t *testing.T, base, repo, tag string, img ociImage) {
	t.Helper()
	status, body, ct := getManifest(t, base, repo, tag)
	if status != 200 || !bytes.Equal(body, img.Manifest) || ct != ocispec.MediaTypeImageManifest {
		t.Fatalf("manifest %s:%s: %d %s, %d bytes; want the pushed %d bytes of %s", repo, tag, status, ct,
			len(body), len(img.Manifest), ocispec.MediaTypeImageManifest)
	}
	for _, b := range append([][]byte{img.Config}, img.Layers...) {
		if got := getBlob(t, base, repo, digest.FromBytes(b)); !bytes.Equal(got, b) {
			t.Fatalf("blob %s@%s: %d bytes differ from the %d pushed", repo, digest.FromBytes(b), len(got), len(b))
		}
	}
}

// requireDirImage checks a skopeo dir: copy: manifest.json and one file per blob, named by
// the digest's hex, byte-identical.
func requireDirImage(t *testing.T, dir string, img ociImage) {
	t.Helper()
	if got, err := os.ReadFile(filepath.Join(dir, "manifest.json")); err != nil || !bytes.Equal(got, img.Manifest) {
		t.Fatalf("dir: manifest.json (%v) differs from the pushed manifest", err)
	}
	for _, b := range append([][]byte{img.Config}, img.Layers...) {
		d := digest.FromBytes(b)
		if got, err := os.ReadFile(filepath.Join(dir, d.Encoded())); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("dir: blob %s (%v) differs", d, err)
		}
	}
}
