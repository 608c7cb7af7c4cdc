package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/catalog"
)

// wireCode decodes the one error of an OCI error body.
func wireCode(t *testing.T, body []byte) (Code, string) {
	t.Helper()
	var w struct{ Errors []wireError }
	if err := json.Unmarshal(body, &w); err != nil || len(w.Errors) != 1 {
		t.Fatalf("error body %q: %v", body, err)
	}
	return w.Errors[0].Code, w.Errors[0].Message
}

// TestPushFaultIsUnknown: a push the catalog cannot inspect for a fault of the server (the
// disk's blob file cannot be read) is a 500 UNKNOWN with the generic message, not a
// MANIFEST_INVALID carrying the internal error; nothing is stored.
func TestPushFaultIsUnknown(t *testing.T) {
	s := newSecured(t)
	good, _ := qcow2Pair(t, "16M")
	disk, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	hdr := s.as("member-a")
	ld := s.pushBlobAs("a/disks", disk, hdr)
	cd := s.pushBlobAs("a/disks", []byte("{}"), hdr)
	// The blob's file becomes unreadable: a directory opens but does not read.
	path := filesOf(s.store).BlobPath(digest.Digest(ld))
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.disk","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d,"annotations":{"org.opencontainers.image.title":%q}}]}`,
		cd, ld, len(disk), filepath.Base(good))
	r, body := s.do("PUT", "/v2/a/disks/manifests/v1", []byte(m), append(hdr, "Content-Type", "application/vnd.oci.image.manifest.v1+json")...)
	code, msg := wireCode(t, body)
	if r.StatusCode != 500 || code != CodeUnknown || msg != codeInfo[CodeUnknown].message {
		t.Fatalf("push over an unreadable blob: %d %s", r.StatusCode, body)
	}
	if r, _ := s.do("GET", "/v2/a/disks/manifests/v1", nil, hdr...); r.StatusCode != 404 {
		t.Fatalf("manifest stored after a fault: %d", r.StatusCode)
	}
}

// TestDeleteRefusedByCatalog: deleting the manifest of a protected image through the
// Registry API is DENIED with the catalog's reason (it was a 500), and the image stays.
func TestDeleteRefusedByCatalog(t *testing.T) {
	s := newSecured(t)
	ctx := context.Background()
	memberA := s.scoped(t, "member-a", "a")
	name, format, bare := "Kept", "raw", "bare"
	img, err := s.catalog.Create(ctx, memberA, catalog.NewImage{Name: &name, DiskFormat: &format, ContainerFormat: &bare, Protected: true})
	if err != nil {
		t.Fatal(err)
	}
	disk := bytes.Repeat([]byte("kept"), 4096)
	if img, err = s.catalog.Upload(ctx, memberA, img.ID, bytes.NewReader(disk), int64(len(disk))); err != nil {
		t.Fatal(err)
	}
	path := "/v2/" + img.Repository + "/manifests/" + img.Reference
	r, body := s.do("DELETE", path, nil, s.as("member-a")...)
	code, msg := wireCode(t, body)
	if r.StatusCode != 403 || code != CodeDenied || msg != "image "+img.ID+" is protected and cannot be deleted" {
		t.Fatalf("delete of a protected image: %d %s", r.StatusCode, body)
	}
	if got, err := s.catalog.Get(ctx, memberA, img.ID); err != nil || got.Status != catalog.StatusActive {
		t.Fatalf("protected image after the refused delete: %v %v", got.Status, err)
	}
}
