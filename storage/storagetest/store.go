package storagetest

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// TestStore runs the Store's behaviours that depend on the blob store (uploads across a
// restart, reads, dedupe, GC of objects and staging) under the embedded metadata store.
// fresh makes an empty blob store for one test and returns how to open it (again, after
// a restart).
func TestStore(t *testing.T, fresh func(t *testing.T) func(t *testing.T) storage.BlobStore) {
	t.Run("ResumeAfterRestart", func(t *testing.T) { testStoreResume(t, fresh) })
	t.Run("DigestMismatchStoresNothing", func(t *testing.T) { testStoreMismatch(t, fresh) })
	t.Run("DuplicateCommitKeepsOneObject", func(t *testing.T) { testStoreDuplicate(t, fresh) })
	t.Run("GarbageCollection", func(t *testing.T) { testStoreGC(t, fresh) })
}

// storeEnv is a Store over one metadata file and the blob store; reopen is a restart.
type storeEnv struct {
	t    *testing.T
	open func(t *testing.T) storage.BlobStore
	path string
	m    meta.Store
	b    storage.BlobStore
	s    *storage.Store
}

func newStoreEnv(t *testing.T, fresh func(t *testing.T) func(t *testing.T) storage.BlobStore) *storeEnv {
	e := &storeEnv{t: t, open: fresh(t), path: filepath.Join(t.TempDir(), "meta.db")}
	e.reopen()
	t.Cleanup(func() { e.m.Close() })
	return e
}

func (e *storeEnv) reopen() {
	e.t.Helper()
	if e.m != nil {
		e.m.Close()
	}
	m, err := meta.OpenBolt(e.path, time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	e.m, e.b = m, e.open(e.t)
	e.s = storage.New(e.b, m)
}

func (e *storeEnv) push(repo string, content []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(content)
	u, err := e.s.StartUpload(ctx, repo, "")
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.s.CommitUpload(ctx, repo, u.ID, d, 0, bytes.NewReader(content), -1); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *storeEnv) read(repo string, d digest.Digest) []byte {
	e.t.Helper()
	f, size, err := e.s.OpenBlob(ctx, repo, d)
	if err != nil {
		e.t.Fatalf("open %s: %v", d, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil || int64(len(b)) != size {
		e.t.Fatalf("read %s: %d of %d bytes, %v", d, len(b), size, err)
	}
	return b
}

func testStoreResume(t *testing.T, fresh func(t *testing.T) func(t *testing.T) storage.BlobStore) {
	e := newStoreEnv(t, fresh)
	content := randBytes(t, 13<<20+3)
	u, err := e.s.StartUpload(ctx, "p/r", "")
	if err != nil {
		t.Fatal(err)
	}
	cuts := []int{0, 1 << 20, 7 << 20, 8 << 20, len(content)}
	for i := 1; i < len(cuts)-1; i++ {
		if _, err := e.s.AppendUpload(ctx, "p/r", u.ID, int64(cuts[i-1]), bytes.NewReader(content[cuts[i-1]:cuts[i]]), -1); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		e.reopen()
		got, err := e.s.GetUpload(ctx, "p/r", u.ID)
		if err != nil || got.Offset != int64(cuts[i]) {
			t.Fatalf("after restart: offset %d, %v; want %d", got.Offset, err, cuts[i])
		}
	}
	// A chunk that does not start at the offset is refused and changes nothing.
	if _, err := e.s.AppendUpload(ctx, "p/r", u.ID, 3, bytes.NewReader([]byte("x")), -1); err != storage.ErrRangeInvalid {
		t.Fatalf("out-of-order chunk: %v", err)
	}
	d := digest.FromBytes(content)
	if _, err := e.s.CommitUpload(ctx, "p/r", u.ID, d, int64(cuts[3]), bytes.NewReader(content[cuts[3]:]), -1); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if got := e.read("p/r", d); !bytes.Equal(got, content) {
		t.Fatal("blob differs after a resumed upload")
	}
	f, _, err := e.s.OpenBlob(ctx, "p/r", d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(9<<20, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 100)
	if _, err := io.ReadFull(f, part); err != nil || !bytes.Equal(part, content[9<<20:9<<20+100]) {
		t.Fatalf("ranged read after seek: %v", err)
	}
}

func testStoreMismatch(t *testing.T, fresh func(t *testing.T) func(t *testing.T) storage.BlobStore) {
	e := newStoreEnv(t, fresh)
	before := keys(t, e.b)
	content := randBytes(t, 6<<20)
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		u, err := e.s.StartUpload(ctx, "p/r", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.AppendUpload(ctx, "p/r", u.ID, 0, bytes.NewReader(content), -1); err != nil {
			t.Fatal(err)
		}
		wrong := alg.FromBytes([]byte("something else"))
		if _, err := e.s.CommitUpload(ctx, "p/r", u.ID, wrong, -1, bytes.NewReader([]byte("tail")), -1); err != storage.ErrDigestMismatch {
			t.Fatalf("%s: commit under a wrong digest: %v", alg, err)
		}
		if _, err := e.s.StatBlob(ctx, "p/r", wrong); err != storage.ErrBlobUnknown {
			t.Fatalf("%s: a refused blob is visible: %v", alg, err)
		}
		if sessionStaging(t, e.b, u.ID) {
			t.Fatalf("%s: a refused upload left staging", alg)
		}
	}
	// A digest of another algorithm than the session hashed is checked too (read back once).
	u, _ := e.s.StartUpload(ctx, "p/r", "")
	d512 := digest.SHA512.FromBytes(content)
	if _, err := e.s.AppendUpload(ctx, "p/r", u.ID, 0, bytes.NewReader(content), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.CommitUpload(ctx, "p/r", u.ID, d512, -1, bytes.NewReader(nil), -1); err != nil {
		t.Fatalf("sha512 commit of a sha256 session: %v", err)
	}
	if got := e.read("p/r", d512); !bytes.Equal(got, content) {
		t.Fatal("sha512 blob differs")
	}
	after := keys(t, e.b)
	if len(after) != len(before)+1 {
		t.Fatalf("objects %v, want one more than %v", after, before)
	}
}

// testStoreDuplicate pushes one content twice, into two repositories: one object stays.
func testStoreDuplicate(t *testing.T, fresh func(t *testing.T) func(t *testing.T) storage.BlobStore) {
	e := newStoreEnv(t, fresh)
	content := randBytes(t, 1<<20)
	before := len(keys(t, e.b))
	d := e.push("p/one", content)
	if e.push("p/two", content) != d {
		t.Fatal("digest changed")
	}
	if n := len(keys(t, e.b)) - before; n != 1 {
		t.Fatalf("%d objects for one content, want 1", n)
	}
	if !bytes.Equal(e.read("p/two", d), content) {
		t.Fatal("second push reads back wrong")
	}
}

// testStoreGC: a pass removes exactly the unreferenced blob, the stale session's staging
// (a multipart upload and a tail on S3) and an object nobody recorded; what a manifest
// holds stays, and the walk afterwards shows exactly those objects.
func testStoreGC(t *testing.T, fresh func(t *testing.T) func(t *testing.T) storage.BlobStore) {
	e := newStoreEnv(t, fresh)
	now := time.Now()
	e.s.Now = func() time.Time { return now }
	kept := e.push("g/r", randBytes(t, 2<<20))
	content := []byte(fmt.Sprintf(`{"schemaVersion":2,"layers":[%q]}`, kept))
	md := digest.FromBytes(content)
	if err := e.s.PutManifest(ctx, "g/r", storage.ManifestPut{Digest: md, MediaType: "application/vnd.oci.image.manifest.v1+json",
		Content: content, Required: []digest.Digest{kept}, Tags: []string{"v1"}}); err != nil {
		t.Fatal(err)
	}
	want := keys(t, e.b)
	slices.Sort(want)

	loose := e.push("g/r", randBytes(t, 6<<20))
	stale, err := e.s.StartUpload(ctx, "g/r", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.AppendUpload(ctx, "g/r", stale.ID, 0, bytes.NewReader(randBytes(t, 6<<20)), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.AppendUpload(ctx, "g/r", stale.ID, 6<<20, bytes.NewReader(randBytes(t, 1<<20)), -1); err != nil {
		t.Fatal(err)
	}
	// An object committed by a writer whose record never landed (a crash in between).
	orphanContent := randBytes(t, 100)
	w, err := e.b.NewUpload(ctx, uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(ctx, bytes.NewReader(orphanContent), -1, true); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(ctx, digest.FromBytes(orphanContent)); err != nil {
		t.Fatal(err)
	}
	if !sessionStaging(t, e.b, stale.ID) {
		t.Fatal("the stale session shows no staging")
	}

	opt := storage.GCOptions{Grace: time.Hour, UploadMaxAge: time.Hour}
	if rep, err := e.s.CollectGarbage(ctx, opt); err != nil || len(rep.Blobs)+len(rep.Uploads)+rep.OrphanFiles != 0 {
		t.Fatalf("gc within grace removed %+v, %v", rep, err)
	}
	now = now.Add(2 * time.Hour)
	rep, err := e.s.CollectGarbage(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Blobs, []digest.Digest{loose}) || !slices.Equal(rep.Uploads, []string{stale.ID}) || rep.OrphanFiles != 1 {
		t.Fatalf("gc removed %+v; want blob %s, upload %s, 1 orphan", rep, loose, stale.ID)
	}
	got := keys(t, e.b)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("after gc the store holds %v, want exactly %v", got, want)
	}
	if err := e.b.Walk(ctx, func(en storage.Entry) error {
		if en.Key == "" {
			t.Errorf("staging left after gc: %+v", en)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.read("g/r", kept), e.read("g/r", kept)) {
		t.Fatal("kept blob unreadable")
	}
}
