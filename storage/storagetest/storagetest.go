// Package storagetest is the behaviour every blob store must have, run against each one
// (the filesystem store, the S3 store on a real versitygw): perkeep's storagetest.Test for
// our BlobStore interface.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage"
)

// Test runs the suite against the store open returns; each call of open gives a store
// over the same bytes (a restart). Sizes cross S3's 5 MiB part minimum on purpose.
func Test(t *testing.T, open func(t *testing.T) storage.BlobStore) {
	t.Run("ChunkedResumeCommitRead", func(t *testing.T) { testChunked(t, open) })
	t.Run("FailedAppendChangesNothing", func(t *testing.T) { testFailedAppend(t, open(t)) })
	t.Run("TooLarge", func(t *testing.T) { testTooLarge(t, open(t)) })
	t.Run("EmptyAndSmall", func(t *testing.T) { testSmall(t, open(t)) })
	t.Run("AbortLeavesNothing", func(t *testing.T) { testAbort(t, open(t)) })
	t.Run("DropUploadWithoutState", func(t *testing.T) { testDrop(t, open(t)) })
	t.Run("MissingKeys", func(t *testing.T) { testMissing(t, open(t)) })
	t.Run("FinalAppendRetried", func(t *testing.T) { testFinalRetried(t, open(t)) })
}

var ctx = context.Background()

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sessionStaging reports whether Walk shows staging of session id.
func sessionStaging(t *testing.T, b storage.BlobStore, id string) bool {
	t.Helper()
	found := false
	if err := b.Walk(ctx, func(e storage.Entry) error {
		found = found || (e.Key == "" && e.Upload == id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

func keys(t *testing.T, b storage.BlobStore) []string {
	t.Helper()
	var out []string
	if err := b.Walk(ctx, func(e storage.Entry) error {
		if e.Key != "" {
			out = append(out, e.Key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func readAll(t *testing.T, b storage.BlobStore, key string, off, n int64) []byte {
	t.Helper()
	rc, err := b.Open(ctx, key, off, n)
	if err != nil {
		t.Fatalf("open %s at %d+%d: %v", key, off, n, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return got
}

// testChunked pushes 23 MiB + 7 bytes in chunks of 1 MiB, 3 MiB, 17 MiB and a tail, with
// a "restart" (a new store and ResumeUpload from the saved state) between every chunk,
// and checks the hash sinks, the committed bytes, ranges, Stat, Walk and Remove.
func testChunked(t *testing.T, open func(t *testing.T) storage.BlobStore) {
	content := randBytes(t, 23<<20+7)
	chunks := [][]byte{content[:1<<20], content[1<<20 : 4<<20], content[4<<20 : 21<<20], content[21<<20:]}
	id := uuid.NewString()
	b := open(t)
	w, err := b.NewUpload(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	var off int64
	for i, c := range chunks {
		final := i == len(chunks)-1
		n, err := w.Append(ctx, bytes.NewReader(c), -1, final, h)
		if err != nil || n != int64(len(c)) {
			t.Fatalf("append chunk %d: %d, %v", i, n, err)
		}
		off += n
		if final {
			break
		}
		state, err := w.State()
		if err != nil {
			t.Fatal(err)
		}
		b = open(t) // a restart: only the saved state and offset carry over
		if w, err = b.ResumeUpload(ctx, id, state, off); err != nil {
			t.Fatal(err)
		}
	}
	d := digest.FromBytes(content)
	if got := digest.NewDigest(digest.SHA256, h); got != d {
		t.Fatalf("sink saw %s, want %s", got, d)
	}
	key, err := w.Commit(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if size, err := b.Stat(ctx, key); err != nil || size != int64(len(content)) {
		t.Fatalf("stat %s: %d, %v", key, size, err)
	}
	if got := readAll(t, b, key, 0, -1); !bytes.Equal(got, content) {
		t.Fatalf("committed bytes differ (%d bytes, want %d)", len(got), len(content))
	}
	for _, r := range [][2]int64{{0, 1}, {5<<20 - 3, 10}, {int64(len(content)) - 5, 5}, {7 << 20, -1}} {
		want := content[r[0]:]
		if r[1] >= 0 {
			want = want[:r[1]]
		}
		if got := readAll(t, b, key, r[0], r[1]); !bytes.Equal(got, want) {
			t.Fatalf("range %v: %d bytes, want %d", r, len(got), len(want))
		}
	}
	if ks := keys(t, b); !slices.Contains(ks, key) {
		t.Fatalf("walk %v does not list %s", ks, key)
	}
	if sessionStaging(t, b, id) {
		t.Fatal("a committed session still has staging")
	}
	if gone, err := b.Remove(ctx, key); err != nil || !gone {
		t.Fatalf("remove: %v %v", gone, err)
	}
	if gone, err := b.Remove(ctx, key); err != nil || gone {
		t.Fatalf("second remove: %v %v, want false, nil", gone, err)
	}
	if _, err := b.Stat(ctx, key); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("stat after remove: %v", err)
	}
}

// brokenReader yields n bytes, then fails like a client that went away.
type brokenReader struct {
	r io.Reader
	n int
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if len(p) > b.n {
		p = p[:b.n]
	}
	m, err := b.r.Read(p)
	b.n -= m
	return m, err
}

// testFailedAppend breaks a chunk off midway (after more than a part's worth): the session
// resumes from the state before it, and the blob is exactly the good chunks.
func testFailedAppend(t *testing.T, b storage.BlobStore) {
	first := randBytes(t, 2<<20)
	broken := randBytes(t, 20<<20)
	last := randBytes(t, 6<<20+1)
	id := uuid.NewString()
	w, err := b.NewUpload(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(ctx, bytes.NewReader(first), -1, false); err != nil {
		t.Fatal(err)
	}
	state, _ := w.State()
	if _, err := w.Append(ctx, &brokenReader{bytes.NewReader(broken), 18 << 20}, -1, false); !errors.Is(err, storage.ErrIncomplete) {
		t.Fatalf("broken chunk: %v, want ErrIncomplete", err)
	}
	w, err = b.ResumeUpload(ctx, id, state, int64(len(first)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(ctx, bytes.NewReader(last), -1, true); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte(nil), first...), last...)
	key, err := w.Commit(ctx, digest.FromBytes(want))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b, key, 0, -1); !bytes.Equal(got, want) {
		t.Fatalf("after a failed append the blob has %d bytes, want %d", len(got), len(want))
	}
}

func testTooLarge(t *testing.T, b storage.BlobStore) {
	w, err := b.NewUpload(ctx, uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(ctx, bytes.NewReader(randBytes(t, 1000)), 999, true); !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("append past max: %v, want ErrTooLarge", err)
	}
	if err := w.Abort(ctx); err != nil {
		t.Fatal(err)
	}
}

// testSmall commits an empty blob and a 10-byte one in one final append each.
func testSmall(t *testing.T, b storage.BlobStore) {
	for _, content := range [][]byte{{}, []byte("ten bytes!")} {
		w, err := b.NewUpload(ctx, uuid.NewString())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Append(ctx, bytes.NewReader(content), -1, true); err != nil {
			t.Fatal(err)
		}
		key, err := w.Commit(ctx, digest.FromBytes(content))
		if err != nil {
			t.Fatal(err)
		}
		if size, err := b.Stat(ctx, key); err != nil || size != int64(len(content)) {
			t.Fatalf("stat: %d %v", size, err)
		}
		if got := readAll(t, b, key, 0, -1); !bytes.Equal(got, content) {
			t.Fatalf("read %q, want %q", got, content)
		}
	}
}

// testAbort aborts sessions at each stage (small tail only, parts, a final single object)
// and finds nothing of them afterwards.
func testAbort(t *testing.T, b storage.BlobStore) {
	before := keys(t, b)
	for _, sizes := range [][]int{{1 << 20}, {7 << 20, 1 << 20}, {100}} {
		id := uuid.NewString()
		w, err := b.NewUpload(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range sizes {
			final := len(sizes) == 1 && n == 100
			if _, err := w.Append(ctx, bytes.NewReader(randBytes(t, n)), -1, final); err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
		}
		if err := w.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		if sessionStaging(t, b, id) {
			t.Fatalf("aborted session %v left staging", sizes)
		}
	}
	if after := keys(t, b); !slices.Equal(before, after) {
		t.Fatalf("aborts left objects: %v, before %v", after, before)
	}
}

// testDrop leaves a session's staging behind as a crash would and removes it knowing only
// its id, as GC does.
func testDrop(t *testing.T, b storage.BlobStore) {
	id := uuid.NewString()
	w, err := b.NewUpload(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(ctx, bytes.NewReader(randBytes(t, 6<<20)), -1, false); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(ctx, bytes.NewReader(randBytes(t, 1<<20)), -1, false); err != nil {
		t.Fatal(err)
	}
	if !sessionStaging(t, b, id) {
		t.Fatal("walk does not show a session's staging")
	}
	if err := b.DropUpload(ctx, id); err != nil {
		t.Fatal(err)
	}
	if sessionStaging(t, b, id) {
		t.Fatal("DropUpload left staging")
	}
	if err := b.DropUpload(ctx, id); err != nil {
		t.Fatalf("second DropUpload: %v", err)
	}
}

func testMissing(t *testing.T, b storage.BlobStore) {
	if _, err := b.Stat(ctx, "data/no-such-key"); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("stat missing: %v", err)
	}
	if _, err := b.Open(ctx, "data/no-such-key", 0, -1); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("open missing: %v", err)
	}
	if gone, err := b.Remove(ctx, "data/no-such-key"); gone || err != nil {
		t.Fatalf("remove missing: %v %v", gone, err)
	}
}

// testFinalRetried: after the final append is recorded (and, say, the commit failed), a
// resumed writer takes an empty final append again and commits; more bytes are refused.
func testFinalRetried(t *testing.T, b storage.BlobStore) {
	content := randBytes(t, 6<<20+9)
	id := uuid.NewString()
	w, err := b.NewUpload(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(ctx, bytes.NewReader(content), -1, true); err != nil {
		t.Fatal(err)
	}
	state, _ := w.State()
	if w, err = b.ResumeUpload(ctx, id, state, int64(len(content))); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Append(ctx, bytes.NewReader(nil), -1, true); n != 0 || err != nil {
		t.Fatalf("empty final append again: %d, %v", n, err)
	}
	key, err := w.Commit(ctx, digest.FromBytes(content))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b, key, 0, -1); !bytes.Equal(got, content) {
		t.Fatalf("committed %d bytes, want %d", len(got), len(content))
	}
}
