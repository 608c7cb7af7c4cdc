package storage_test

import (
	"bytes"
	"syscall"
	"testing"
)

// A cache whose disk fails in the middle of a cold GET (here: a file size limit, so writes
// past 4 MiB fail with EFBIG) does not cut the client's GET: the rest comes from the store,
// and nothing is cached.
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
