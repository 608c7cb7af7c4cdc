package storage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// cacheEnv is a Store over one S3 bucket (a real versitygw) with a node cache in front; its
// metadata and cache directories survive reopen, as a node's do across a restart.
type cacheEnv struct {
	t      *testing.T
	s3     *testenv.S3
	bucket string
	dir    string
	max    int64
	store  *storage.Store
	cache  *storage.Cache
	closed func()
	url    string // the store's URL ("": versitygw's own)
}

func newCacheEnv(t *testing.T, max int64) *cacheEnv {
	s3 := testenv.StartS3(t)
	e := &cacheEnv{t: t, s3: s3, bucket: s3.Bucket("blobs"), dir: t.TempDir(), max: max}
	e.open()
	t.Cleanup(func() { e.closed() })
	return e
}

func (e *cacheEnv) open() {
	e.t.Helper()
	if e.url == "" {
		e.url = e.s3.URL(e.bucket, "p")
	}
	b, err := storage.OpenS3(e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := meta.OpenBolt(filepath.Join(e.dir, "meta.db"), time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := storage.OpenCache(filepath.Join(e.dir, "cache"), e.max)
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := storage.NewStores(m, c.WrapAll([]storage.NamedStore{{Name: "s3", Store: b}}), "")
	if err != nil {
		e.t.Fatal(err)
	}
	s.Cache = c
	e.store, e.cache = s, c
	e.closed = func() { c.Close(); m.Close() }
}

func (e *cacheEnv) restart() {
	e.closed()
	e.open()
}

func (e *cacheEnv) put(n int) (digest.Digest, []byte) {
	e.t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	d, _, err := e.store.PutBlob(ctx, "proj/img", bytes.NewReader(data), storage.PutOptions{Max: -1})
	if err != nil {
		e.t.Fatal(err)
	}
	return d, data
}

// get reads the whole blob as a client's GET does (io.Copy: the reader's WriteTo) and
// reports whether it came from the cache (a file).
func (e *cacheEnv) get(d digest.Digest, want []byte) bool {
	e.t.Helper()
	f, size, err := e.store.OpenBlob(ctx, "proj/img", d)
	if err != nil {
		e.t.Fatalf("open %s: %v", d, err)
	}
	defer e.cache.Flush() // after Close: the fill, if any, is committed
	defer f.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, f); err != nil {
		e.t.Fatal(err)
	}
	if size != int64(len(want)) || !bytes.Equal(buf.Bytes(), want) {
		e.t.Fatalf("blob %s: got %d bytes (size %d), want %d, equal=%v", d, buf.Len(), size, len(want), bytes.Equal(buf.Bytes(), want))
	}
	_, cached := f.(*os.File)
	return cached
}

func TestCacheFillOnRead(t *testing.T) {
	e := newCacheEnv(t, 64<<20)
	d, data := e.put(7<<20 + 13) // two S3 parts
	if e.get(d, data) {
		t.Fatal("first read came from the cache")
	}
	gets := e.s3.Requests("s3_GetObject", "p/data/")
	if !e.get(d, data) {
		t.Fatal("second read did not come from the cache")
	}
	if n := e.s3.Requests("s3_GetObject", "p/data/"); n != gets {
		t.Fatalf("a cached read went to S3: %d GETs, was %d", n, gets)
	}
	// Ranges are answered from the cached file too.
	f, _, err := e.store.OpenBlob(ctx, "proj/img", d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := make([]byte, 1000)
	if _, err := f.(io.ReaderAt).ReadAt(p, 5<<20); err != nil || !bytes.Equal(p, data[5<<20:5<<20+1000]) {
		t.Fatalf("ranged read from cache: %v", err)
	}
	st := e.cache.Stats()
	if st.Fills != 1 || st.FilledBytes != int64(len(data)) || st.Hits != 2 || st.Misses != 1 || st.Entries != 1 || st.Size != int64(len(data)) {
		t.Fatalf("stats %+v", st)
	}
	ents := e.cache.Entries()
	if len(ents) != 1 || ents[0].Digest != d || ents[0].Hits != 2 {
		t.Fatalf("entries %+v", ents)
	}
}

func TestCacheRangedMissDoesNotFill(t *testing.T) {
	e := newCacheEnv(t, 64<<20)
	d, data := e.put(1 << 20)
	f, _, err := e.store.OpenBlob(ctx, "proj/img", d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(4096, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || !bytes.Equal(got, data[4096:]) {
		t.Fatalf("ranged read through the cache: %v", err)
	}
	// It did not even start a fill (a ranged read makes no cache file).
	if st := e.cache.Stats(); st.Entries != 0 || st.Discarded != 0 {
		t.Fatalf("a ranged read filled the cache: %+v", st)
	}
	// The server's own passes over a blob do not fill.
	f, _, err = e.store.OpenBlob(storage.WithoutCacheFill(ctx), "proj/img", d)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, f)
	f.Close()
	if st := e.cache.Stats(); st.Entries != 0 || st.Discarded != 0 {
		t.Fatalf("a read without fill filled the cache: %+v", st)
	}
	// A reader that stops half way leaves nothing either.
	f, _, _ = e.store.OpenBlob(ctx, "proj/img", d)
	io.CopyN(io.Discard, f, 1000)
	f.Close()
	e.cache.Flush() // the discard runs behind the reader
	if st := e.cache.Stats(); st.Entries != 0 || st.Discarded != 1 {
		t.Fatalf("a partial read filled the cache: %+v", st)
	}
	if left, _ := os.ReadDir(filepath.Join(e.dir, "cache", "incomplete")); len(left) != 0 {
		t.Fatalf("incomplete fills left behind: %v", left)
	}
}

func TestCacheDigestMismatchDiscarded(t *testing.T) {
	e := newCacheEnv(t, 64<<20)
	d, data := e.put(300 << 10)
	// Flip a byte of the object where versitygw keeps it: the store now returns bytes of
	// the right size whose digest is not d.
	objs := e.s3.Objects(e.bucket)
	var obj string
	for _, o := range objs {
		if strings.HasPrefix(o, "p/data/") {
			obj = filepath.Join(e.s3.Root, e.bucket, o)
		}
	}
	if obj == "" {
		t.Fatalf("no data object in %v", objs)
	}
	bad := bytes.Clone(data)
	bad[1000] ^= 0xff
	if err := os.WriteFile(obj, bad, 0o640); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		f, _, err := e.store.OpenBlob(ctx, "proj/img", d)
		if err != nil {
			t.Fatal(err)
		}
		if _, cached := f.(*os.File); cached {
			t.Fatal("a mismatched fill was served from the cache")
		}
		io.Copy(io.Discard, f)
		f.Close()
		e.cache.Flush()
	}
	if st := e.cache.Stats(); st.Entries != 0 || st.Fills != 0 || st.Discarded != 2 {
		t.Fatalf("mismatched fill kept: %+v", st)
	}
}

func TestCacheLRUEvictionBySize(t *testing.T) {
	e := newCacheEnv(t, 3<<20+10)
	now := time.Unix(1_800_000_000, 0)
	e.cache.Now = func() time.Time { now = now.Add(time.Second); return now }
	a, da := e.put(1 << 20)
	b, db := e.put(1 << 20)
	c, dc := e.put(1 << 20)
	e.get(a, da)
	e.get(b, db)
	e.get(c, dc)
	if !e.get(a, da) { // a is now the most recently used; b the least
		t.Fatal("a not cached")
	}
	d, dd := e.put(1<<20 + 1)
	e.get(d, dd)
	if e.cache.Has(b) || !e.cache.Has(a) || !e.cache.Has(c) || !e.cache.Has(d) {
		t.Fatalf("after filling d: a=%v b=%v c=%v d=%v; want b evicted", e.cache.Has(a), e.cache.Has(b), e.cache.Has(c), e.cache.Has(d))
	}
	if st := e.cache.Stats(); st.Size > 3<<20+10 || st.Entries != 3 {
		t.Fatalf("stats %+v", st)
	}
	// A blob bigger than the whole cache is served and not cached.
	big, dbig := e.put(4 << 20)
	e.get(big, dbig)
	if e.cache.Has(big) || e.cache.Stats().Entries != 3 {
		t.Fatal("a blob bigger than the cache was cached")
	}
}

func TestCacheRestartKeepsEntries(t *testing.T) {
	e := newCacheEnv(t, 3<<20)
	now := time.Unix(1_800_000_000, 0)
	tick := func() time.Time { now = now.Add(time.Second); return now }
	e.cache.Now = tick
	a, da := e.put(1 << 20)
	b, db := e.put(1 << 20)
	e.get(a, da)
	e.get(b, db)
	e.get(a, da) // b is least recently used
	if err := e.cache.Queue("11111111-2222-3333-4444-555555555555", b); err != nil {
		t.Fatal(err)
	}
	// A file a dead process renamed into place without its index entry is removed.
	stray := filepath.Join(e.dir, "cache", "blobs", "sha256", strings.Repeat("ab", 32))
	if err := os.WriteFile(stray, []byte("stray"), 0o640); err != nil {
		t.Fatal(err)
	}
	e.restart()
	e.cache.Now = tick
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stray cache file kept: %v", err)
	}
	if !e.cache.Has(a) || !e.cache.Has(b) {
		t.Fatal("restart lost cache entries")
	}
	if q, err := e.cache.Queued(); err != nil || len(q) != 1 || q[0].Digest != b {
		t.Fatalf("restart lost the queue: %v %v", q, err)
	}
	gets := e.s3.Requests("s3_GetObject", "p/data/")
	if !e.get(a, da) || !e.get(b, db) {
		t.Fatal("not served from the cache after a restart")
	}
	if e.s3.Requests("s3_GetObject", "p/data/") != gets {
		t.Fatal("reads after restart went to S3")
	}
	// The LRU order survived: a was used before b now, so a new blob evicts a.
	c, dc := e.put(1<<20 + 5)
	e.get(c, dc)
	if e.cache.Has(a) || !e.cache.Has(b) {
		t.Fatalf("LRU order after restart: a=%v b=%v", e.cache.Has(a), e.cache.Has(b))
	}
	// A smaller bound at the next start evicts down to it.
	e.closed()
	e.max = 1<<20 + 5
	e.open()
	if st := e.cache.Stats(); st.Entries != 1 || !e.cache.Has(c) {
		t.Fatalf("after restart with a smaller bound: %+v", st)
	}
}

func TestCacheConcurrentReadersFillOnce(t *testing.T) {
	e := newCacheEnv(t, 64<<20)
	d, data := e.put(12 << 20)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, _, err := e.store.OpenBlob(ctx, "proj/img", d)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			got, err := io.ReadAll(f)
			if err == nil && !bytes.Equal(got, data) {
				err = errors.New("wrong bytes")
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	e.cache.Flush()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := e.cache.Stats()
	if st.Fills != 1 || st.FilledBytes != int64(len(data)) || st.Entries != 1 {
		t.Fatalf("want one fill: %+v", st)
	}
	if !e.get(d, data) {
		t.Fatal("not cached after concurrent reads")
	}
}

func TestCacheDeletedBlobNeverServed(t *testing.T) {
	e := newCacheEnv(t, 64<<20)
	d, data := e.put(2 << 20)
	e.get(d, data)
	if !e.get(d, data) {
		t.Fatal("not cached")
	}
	if err := e.store.DeleteBlob(ctx, "proj/img", d); err != nil {
		t.Fatal(err)
	}
	// Unlinked from its only repository: the read path refuses it though the cache holds it.
	if _, _, err := e.store.OpenBlob(ctx, "proj/img", d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Fatalf("open deleted blob: %v, want ErrBlobUnknown", err)
	}
	rep, err := e.store.CollectGarbage(ctx, storage.GCOptions{})
	if err != nil || len(rep.Blobs) != 1 {
		t.Fatalf("gc: %+v %v", rep, err)
	}
	if e.cache.Has(d) || e.cache.Stats().Size != 0 {
		t.Fatal("gc left the blob in the cache")
	}
	if _, err := os.Stat(filepath.Join(e.dir, "cache", "blobs", "sha256", d.Encoded())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cached file after gc: %v", err)
	}
	// Prefetching a collected blob fetches nothing.
	if err := e.store.Prefetch(ctx, "11111111-2222-3333-4444-555555555555", d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Fatalf("prefetch collected blob: %v", err)
	}
}

func TestCachePrefetchQueue(t *testing.T) {
	e := newCacheEnv(t, 64<<20)
	d, data := e.put(3 << 20)
	const img = "11111111-2222-3333-4444-555555555555"
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { e.store.RunPrefetch(ctx, slog.Default()); close(done) }()
	if err := e.cache.Queue(img, d); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !e.cache.Has(d) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	ents := e.cache.Entries()
	if len(ents) != 1 || len(ents[0].Images) != 1 || ents[0].Images[0] != img {
		t.Fatalf("entries after prefetch: %+v", ents)
	}
	if q, _ := e.cache.Queued(); len(q) != 0 {
		t.Fatalf("queue after prefetch: %+v", q)
	}
	if !e.get(d, data) {
		t.Fatal("prefetched blob not served from the cache")
	}
}
