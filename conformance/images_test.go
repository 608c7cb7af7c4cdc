package conformance

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// tarEntry is one member of a layer tar built by buildTar.
type tarEntry struct {
	Name     string
	Dir      bool
	Mode     int64
	UID, GID int
	Data     []byte
}

// buildTar returns an uncompressed tar holding entries in order, with a fixed mtime so equal
// input gives equal bytes.
func buildTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: e.Mode, Uid: e.UID, Gid: e.GID, ModTime: mtime, Format: tar.FormatPAX}
		if e.Dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readTar returns the regular files of a tar by name.
func readTar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Typeflag == tar.TypeReg {
			b := new(bytes.Buffer)
			if _, err := b.ReadFrom(tr); err != nil {
				t.Fatal(err)
			}
			files[filepath.Clean(h.Name)] = b.Bytes()
		}
	}
	return files
}

func gzipBytes(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ociImage is a single-manifest OCI image held in memory: a config, layers and the manifest
// that names them.
type ociImage struct {
	Config   []byte
	Layers   [][]byte
	Manifest []byte
}

// blob is content with its media type.
type blob struct {
	MediaType string
	Data      []byte
}

// newImage builds an OCI image (amd64/linux) from layer blobs; diffIDs are the digests of the
// uncompressed layers.
func newImage(t *testing.T, layers []blob, diffIDs []digest.Digest) ociImage {
	t.Helper()
	cfg := ocispec.Image{
		Platform: ocispec.Platform{Architecture: "amd64", OS: "linux"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	img := ociImage{Config: mustJSON(t, cfg)}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    descriptorOf(ocispec.MediaTypeImageConfig, img.Config),
		Layers:    []ocispec.Descriptor{},
	}
	for _, l := range layers {
		img.Layers = append(img.Layers, l.Data)
		m.Layers = append(m.Layers, descriptorOf(l.MediaType, l.Data))
	}
	img.Manifest = mustJSON(t, m)
	return img
}

func descriptorOf(mediaType string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

// push uploads the image's blobs and its manifest under tag through the Registry API.
func (img ociImage) push(t *testing.T, base, repo, tag string) digest.Digest {
	t.Helper()
	pushBlob(t, base, repo, img.Config)
	for _, l := range img.Layers {
		pushBlob(t, base, repo, l)
	}
	return pushManifest(t, base, repo, tag, ocispec.MediaTypeImageManifest, img.Manifest)
}

// writeLayout writes the image as an OCI image layout in dir with index.json naming it tag.
func (img ociImage) writeLayout(t *testing.T, dir, tag string) digest.Digest {
	t.Helper()
	blob := func(data []byte) {
		writeFile(t, filepath.Join(dir, "blobs", "sha256", digest.FromBytes(data).Encoded()), data)
	}
	blob(img.Config)
	for _, l := range img.Layers {
		blob(l)
	}
	blob(img.Manifest)
	desc := descriptorOf(ocispec.MediaTypeImageManifest, img.Manifest)
	desc.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{desc}}
	writeFile(t, filepath.Join(dir, ocispec.ImageIndexFile), mustJSON(t, idx))
	writeFile(t, filepath.Join(dir, ocispec.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`))
	return desc.Digest
}

// readLayoutBlob reads a blob of an OCI image layout.
func readLayoutBlob(t *testing.T, dir string, d digest.Digest) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()))
	if err != nil {
		t.Fatalf("layout blob: %v", err)
	}
	return b
}

// layoutManifest returns the digest of the manifest index.json names tag.
func layoutManifest(t *testing.T, dir, tag string) digest.Digest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ocispec.ImageIndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == tag {
			return m.Digest
		}
	}
	t.Fatalf("layout %s: no manifest named %q in %s", dir, tag, b)
	return ""
}
