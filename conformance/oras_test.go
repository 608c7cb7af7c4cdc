package conformance

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/internal/testenv"
)

const (
	orasArtifactType = "application/vnd.xloud.test.files.v1"
	orasSBOMType     = "application/vnd.xloud.test.sbom.v1+json"
)

// orasBigSize is the size of the large file oras pushes: over 64 MiB and not a round number.
const orasBigSize = 64<<20 + 4097

// TestOras pushes a 64 MiB+ file and a small one with oras (oras-go sends each blob in one
// monolithic PUT), pulls them back byte-identical, attaches an artifact and finds it with
// `oras discover` through the referrers API, lists tags, and copies the graph with its
// referrers to another repository.
func TestOras(t *testing.T) {
	t.Parallel()
	bin := testenv.RequireTool(t, "oras")
	eachBackend(t, func(t *testing.T, srv *testenv.Server) {
		dir := t.TempDir()
		oras := tool{Path: bin, Dir: dir}
		bigDigest := writeRandomFile(t, filepath.Join(dir, "disk.img"), orasBigSize)
		small := []byte("xloud oras small file\n")
		writeFile(t, filepath.Join(dir, "notes.txt"), small)

		repo := "oras/files"
		ref := srv.RegistryAddr + "/" + repo
		var pushed orasDescriptor
		decodeJSON(t, oras.must(t, "push", "--plain-http", "--no-tty", "--format", "json",
			"--artifact-type", orasArtifactType, ref+":v1,latest", "disk.img", "notes.txt"), &pushed)
		if pushed.ArtifactType != orasArtifactType {
			t.Errorf("oras push: artifactType %q, want %q", pushed.ArtifactType, orasArtifactType)
		}

		// The manifest the server holds names exactly the two files, by content digest.
		status, body, ct := getManifest(t, srv.URL(), repo, "v1")
		if status != 200 || digest.FromBytes(body) != pushed.Digest || ct != ocispec.MediaTypeImageManifest {
			t.Fatalf("GET manifest %s:v1: %d %s %s, want 200 %s %s", repo, status, ct, digest.FromBytes(body), ocispec.MediaTypeImageManifest, pushed.Digest)
		}
		var m ocispec.Manifest
		decodeJSON(t, string(body), &m)
		layers := map[string]digest.Digest{}
		for _, l := range m.Layers {
			layers[l.Annotations[ocispec.AnnotationTitle]] = l.Digest
		}
		if layers["disk.img"] != bigDigest || layers["notes.txt"] != digest.FromBytes(small) || len(layers) != 2 {
			t.Fatalf("manifest layers %v, want disk.img=%s notes.txt=%s", layers, bigDigest, digest.FromBytes(small))
		}

		// Pull back: byte-identical.
		oras.must(t, "pull", "--plain-http", "--no-tty", "-o", "out", ref+":latest")
		requireSameFile(t, filepath.Join(dir, "out", "disk.img"), bigDigest, orasBigSize)
		requireSameFile(t, filepath.Join(dir, "out", "notes.txt"), digest.FromBytes(small), int64(len(small)))

		if got := strings.Fields(oras.must(t, "resolve", "--plain-http", ref+":v1")); len(got) != 1 || got[0] != pushed.Digest.String() {
			t.Errorf("oras resolve: %q, want %s", got, pushed.Digest)
		}
		if got := strings.Fields(oras.must(t, "repo", "tags", "--plain-http", ref)); !slices.Equal(got, []string{"latest", "v1"}) {
			t.Errorf("oras repo tags: %q, want [latest v1]", got)
		}

		// Attach an SBOM-like artifact and discover it through the referrers API.
		sbom := []byte(`{"bomFormat":"xloud-test","components":[]}`)
		writeFile(t, filepath.Join(dir, "sbom.json"), sbom)
		var attached orasDescriptor
		decodeJSON(t, oras.must(t, "attach", "--plain-http", "--no-tty", "--format", "json",
			"--distribution-spec", "v1.1-referrers-api", "--artifact-type", orasSBOMType,
			ref+":v1", "sbom.json:application/json"), &attached)

		var found orasDiscovered
		decodeJSON(t, oras.must(t, "discover", "--plain-http", "--format", "json",
			"--distribution-spec", "v1.1-referrers-api", ref+":v1"), &found)
		if found.Digest != pushed.Digest || len(found.Referrers) != 1 ||
			found.Referrers[0].Digest != attached.Digest || found.Referrers[0].ArtifactType != orasSBOMType {
			t.Fatalf("oras discover: subject %s, referrers %+v; want subject %s with one referrer %s (%s)",
				found.Digest, found.Referrers, pushed.Digest, attached.Digest, orasSBOMType)
		}
		if got := referrers(t, srv.URL(), repo, pushed.Digest, orasSBOMType); len(got) != 1 || got[0].Digest != attached.Digest {
			t.Errorf("referrers API with artifactType filter: %s", describe(got))
		}
		if got := referrers(t, srv.URL(), repo, pushed.Digest, "application/vnd.xloud.none"); len(got) != 0 {
			t.Errorf("referrers API filtered on an absent type: %s", describe(got))
		}
		oras.must(t, "pull", "--plain-http", "--no-tty", "-o", "sbom-out", ref+"@"+attached.Digest.String())
		requireSameFile(t, filepath.Join(dir, "sbom-out", "sbom.json"), digest.FromBytes(sbom), int64(len(sbom)))

		// Copy the artifact with its referrers to another repository of the same server.
		copyRef := srv.RegistryAddr + "/oras/copy"
		oras.must(t, "cp", "-r", "--from-plain-http", "--to-plain-http", "--no-tty", ref+":v1", copyRef+":v1")
		var copied orasDiscovered
		decodeJSON(t, oras.must(t, "discover", "--plain-http", "--format", "json",
			"--distribution-spec", "v1.1-referrers-api", copyRef+":v1"), &copied)
		if copied.Digest != pushed.Digest || len(copied.Referrers) != 1 || copied.Referrers[0].Digest != attached.Digest {
			t.Fatalf("oras discover on the copy: subject %s referrers %+v; want %s with referrer %s",
				copied.Digest, copied.Referrers, pushed.Digest, attached.Digest)
		}
		oras.must(t, "pull", "--plain-http", "--no-tty", "-o", "copy-out", copyRef+":v1")
		requireSameFile(t, filepath.Join(dir, "copy-out", "disk.img"), bigDigest, orasBigSize)

		// Delete the tag's manifest; both tags and the manifest are gone, the copy is not.
		oras.must(t, "manifest", "delete", "--plain-http", "--force", ref+"@"+pushed.Digest.String())
		requireManifestGone(t, srv.URL(), repo, "v1")
		requireManifestGone(t, srv.URL(), repo, pushed.Digest.String())
		if tags := tagList(t, srv.URL(), repo); slices.Contains(tags, "v1") || slices.Contains(tags, "latest") {
			t.Errorf("tags after manifest delete: %q", tags)
		}
		if status, _, _ := getManifest(t, srv.URL(), "oras/copy", "v1"); status != 200 {
			t.Errorf("copy after deleting the source: manifest %d, want 200", status)
		}
	})
}

// orasDescriptor is the JSON oras push/attach print with --format json.
type orasDescriptor struct {
	Reference    string        `json:"reference"`
	MediaType    string        `json:"mediaType"`
	Digest       digest.Digest `json:"digest"`
	Size         int64         `json:"size"`
	ArtifactType string        `json:"artifactType"`
}

// orasDiscovered is the JSON oras discover prints with --format json.
type orasDiscovered struct {
	orasDescriptor
	Referrers []orasDescriptor `json:"referrers"`
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, tail(s, 40))
	}
}
