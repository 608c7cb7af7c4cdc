package storage_test

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// TestBlobCopies: a blob in an S3 store (versitygw) and a file store; CopyBlob streams it
// across with the digest checked, reads fall back when the S3 store is down, the last copy
// cannot be removed, and GC removes every copy.
func TestBlobCopies(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s3 := testenv.StartS3(t)
	bucket := s3.Bucket("copies")
	remote, err := storage.OpenS3(s3.URL(bucket, ""))
	if err != nil {
		t.Fatal(err)
	}
	local, err := storage.OpenFiles(filepath.Join(dir, "local"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := meta.OpenBolt(filepath.Join(dir, "meta.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	s, err := storage.NewStores(m, []storage.NamedStore{{Name: "remote", Store: remote}, {Name: "local", Store: local}}, "remote")
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("copy me "), 1<<17) // 1 MiB
	d, _, err := s.PutBlob(ctx, "p/r", bytes.NewReader(data), storage.PutOptions{Max: -1})
	if err != nil {
		t.Fatal(err)
	}
	where := func() []string {
		got, err := s.BlobStores(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := where(); !slices.Equal(got, []string{"remote"}) {
		t.Fatalf("after put: %v", got)
	}
	if err := s.CopyBlob(ctx, d, "nowhere"); !errors.Is(err, storage.ErrStoreUnknown) {
		t.Fatalf("copy to an unknown store: %v", err)
	}
	if err := s.CopyBlob(ctx, digest.FromString("absent"), "local"); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Fatalf("copy of an unknown blob: %v", err)
	}
	if err := s.CopyBlob(ctx, d, "local"); err != nil {
		t.Fatal(err)
	}
	if err := s.CopyBlob(ctx, d, "local"); err != nil { // already there: nothing to do
		t.Fatal(err)
	}
	if got := where(); !slices.Equal(got, []string{"remote", "local"}) {
		t.Fatalf("after copy: %v", got)
	}
	if _, err := local.Stat(ctx, "blobs/sha256/"+d.Encoded()[:2]+"/"+d.Encoded()); err != nil {
		t.Fatalf("no file in the local store: %v", err)
	}

	// The first store is down: reads come from the copy.
	s3.Stop()
	rd, n, err := s.OpenBlob(ctx, "p/r", d)
	if err != nil {
		t.Fatalf("read with the first store down: %v", err)
	}
	got, _ := io.ReadAll(rd)
	rd.Close()
	if n != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatal("fallback read differs")
	}
	s3.Restart()

	if removed, err := s.RemoveBlobCopy(ctx, d, "remote"); err != nil || !removed {
		t.Fatalf("remove the remote copy: %v %v", removed, err)
	}
	if len(s3.Objects(bucket)) != 0 {
		t.Fatalf("objects left in the bucket: %v", s3.Objects(bucket))
	}
	if _, err := s.RemoveBlobCopy(ctx, d, "local"); !errors.Is(err, storage.ErrLastCopy) {
		t.Fatalf("remove the last copy: %v", err)
	}
	if removed, err := s.RemoveBlobCopy(ctx, d, "remote"); err != nil || removed {
		t.Fatalf("remove from a store without a copy: %v %v", removed, err)
	}

	// Copied back, then collected (no manifest holds it, no grace): GC removes every copy.
	if err := s.CopyBlob(ctx, d, "remote"); err != nil {
		t.Fatal(err)
	}
	if len(s3.Objects(bucket)) != 1 {
		t.Fatalf("copy back: %v", s3.Objects(bucket))
	}
	rep, err := s.CollectGarbage(ctx, storage.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.Blobs, d) || rep.BytesFreed != 2*int64(len(data)) || len(s3.Objects(bucket)) != 0 {
		t.Fatalf("gc: %+v, objects %v", rep, s3.Objects(bucket))
	}
	if _, err := local.Stat(ctx, "blobs/sha256/"+d.Encoded()[:2]+"/"+d.Encoded()); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("local copy after gc: %v", err)
	}
}
