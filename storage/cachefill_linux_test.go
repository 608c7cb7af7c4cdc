package storage_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/xloud/xloud-image/storage"
)

// A cache whose disk fails in the middle of a cold GET (here: a file size limit, so writes
// past 4 MiB fail with EFBIG) does not cut the client's GET, which the store's stream feeds
// whatever the cache writer does; nothing is cached.
func TestCacheColdGETCacheDiskFails(t *testing.T) {
	e := newCacheEnv(t, 256<<20)
	d, data := e.put(12<<20 + 5)
	done := make(chan error, 1)
	srv := e.blobServer(done)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 4 << 20
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	got, err := httpGet(srv.URL + "/" + d.String())
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET with the cache's disk failing: %d bytes of %d, err %v", len(got), len(data), err)
	}
	if err := <-done; err != nil {
		t.Fatalf("handler: %v", err)
	}
	e.cache.Flush()
	if st := e.cache.Stats(); st.Entries != 0 || st.Fills != 0 || st.Discarded != 1 {
		t.Fatalf("a failed fill was kept: %+v", st)
	}
	if ents := e.incomplete(); len(ents) != 0 {
		t.Fatalf("fill files left: %v", ents)
	}
}

// cachedFile is where the cache keeps d.
func (e *cacheEnv) cachedFile(d digest.Digest) string {
	return filepath.Join(e.dir, "cache", "blobs", string(d.Algorithm()), d.Encoded())
}

// residentPages counts the pages of the file at path that are in the page cache.
func residentPages(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return 0
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := int64(os.Getpagesize())
	vec := make([]byte, (st.Size()+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(m))), uintptr(len(m)), uintptr(unsafe.Pointer(unsafe.SliceData(vec)))); errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// checkCached fails t unless d is cached as a file holding exactly data, and returns how
// many of its pages the fill left in the page cache (before the check reads it).
func (e *cacheEnv) checkCached(t *testing.T, d digest.Digest, data []byte) int {
	t.Helper()
	if !e.cache.Has(d) {
		t.Fatalf("%d bytes: not cached: %+v", len(data), e.cache.Stats())
	}
	resident := residentPages(t, e.cachedFile(d))
	got, err := os.ReadFile(e.cachedFile(d))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("%d bytes: the cached file holds %d bytes, equal=%v, %v", len(data), len(got), bytes.Equal(got, data), err)
	}
	return resident
}

// A cold GET writes the cache file with O_DIRECT, whatever the blob's size (none, under a
// block, not a multiple of one, a whole number of buffers, between): the file holds the blob
// exactly, and the fill left at most its last partial page in the page cache (written
// through it); the digest check read it back without it either.
func TestCacheColdFillDirect(t *testing.T) {
	e := newCacheEnv(t, 256<<20)
	for _, n := range []int{0, 1, 4095, 4096, 4097, 2 << 20, 3<<20 + 13, 21<<20 + 4096} {
		d, data := e.put(n)
		if e.get(d, data) {
			t.Fatalf("%d bytes: the first GET came from the cache", n)
		}
		if r := e.checkCached(t, d, data); r > 1 {
			t.Errorf("%d bytes: %d pages of the fill in the page cache, want at most the last", n, r)
		}
	}
	if st := e.cache.Stats(); st.Fills != 8 || st.Discarded != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A reader that reads a little first (an unaligned start for the rest): still exact,
	// through the page cache from there.
	d, data := e.put(5<<20 + 7)
	f, _, err := e.store.OpenBlob(ctx, "proj/img", d)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 100)
	if _, err := io.ReadFull(f, head); err != nil {
		t.Fatal(err)
	}
	var rest bytes.Buffer
	if _, err := io.Copy(&rest, f); err != nil || !bytes.Equal(append(head, rest.Bytes()...), data) {
		t.Fatalf("read then copy: %v", err)
	}
	f.Close()
	e.cache.Flush()
	e.checkCached(t, d, data)
}

// Where O_DIRECT is refused (EINVAL, as on a filesystem without it) the fill writes through
// the page cache: the same exact entry.
func TestCacheFillBufferedWhenDirectRefused(t *testing.T) {
	e := newCacheEnv(t, 256<<20)
	defer storage.RefuseDirectIO()()
	d, data := e.put(3<<20 + 13)
	e.get(d, data)
	if r := e.checkCached(t, d, data); r < len(data)/os.Getpagesize() {
		t.Fatalf("%d pages in the page cache: not written through it", r)
	}
}
