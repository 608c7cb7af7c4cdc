package storage_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage"
)

// blobServer serves e's blobs as the registry's whole-blob GET does (Content-Length, then
// io.Copy: the reader's WriteTo into the response's ReadFrom, so sendfile), and tells done
// when each handler has returned.
func (e *cacheEnv) blobServer(done chan<- error) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := digest.Digest(strings.TrimPrefix(r.URL.Path, "/"))
		f, size, err := e.store.OpenBlob(r.Context(), "proj/img", d)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			done <- err
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		_, err = io.Copy(w, f)
		f.Close()
		done <- err
	}))
	e.t.Cleanup(srv.Close)
	return srv
}

// gateProxy stands between the store and versitygw: it passes requests and the first
// limit bytes of each answer, then holds the rest until release is closed, so a test can
// act while a GET is under way.
type gateProxy struct {
	ln      net.Listener
	limit   int64
	release chan struct{}
	wg      sync.WaitGroup
}

func startGateProxy(t *testing.T, upstream string, limit int64) *gateProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gateProxy{ln: ln, limit: limit, release: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go p.serve(c, upstream)
		}
	}()
	t.Cleanup(func() { ln.Close(); p.open(); p.wg.Wait() })
	return p
}

func (p *gateProxy) open() {
	select {
	case <-p.release:
	default:
		close(p.release)
	}
}

func (p *gateProxy) serve(c net.Conn, upstream string) {
	defer p.wg.Done()
	defer c.Close()
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	// A small receive buffer keeps versitygw from sending the whole object ahead.
	u.(*net.TCPConn).SetReadBuffer(64 << 10)
	go func() { io.Copy(u, c); u.Close() }()
	if _, err := io.CopyN(c, u, p.limit); err != nil {
		return
	}
	<-p.release
	io.Copy(c, u)
}

// openVia reopens the env with the store's endpoint at addr.
func (e *cacheEnv) openVia(addr string) {
	e.t.Helper()
	e.closed()
	e.url = e.s3.URL(e.bucket, "p", "endpoint", "http://"+addr)
	e.open()
}

// fdCount counts the process's descriptors but pipes: Go keeps the pipes of its splices in
// a pool of its own.
func fdCount(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd") // counted on Linux only
	}
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); !strings.HasPrefix(l, "pipe:") {
			n++
		}
	}
	return n
}

// settle waits until n() is at most want, or fails.
func settle(t *testing.T, what string, want int, n func() int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%s: %d, was %d before the GET\n%s", what, n(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *cacheEnv) incomplete() []os.DirEntry {
	ents, err := os.ReadDir(filepath.Join(e.dir, "cache", "incomplete"))
	if err != nil {
		e.t.Fatal(err)
	}
	return ents
}

// Concurrent cold GETs over HTTP (one relays the store and fills the cache, the others
// follow the fill or read the store) give every client the blob's exact bytes, and one fill
// is kept.
func TestCacheColdGETOverHTTP(t *testing.T) {
	e := newCacheEnv(t, 256<<20)
	d, data := e.put(21<<20 + 13) // several fill steps, not a multiple of a page
	done := make(chan error, 4)
	srv := e.blobServer(done)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := httpGet(srv.URL + "/" + d.String())
			if err == nil && !bytes.Equal(got, data) {
				err = errors.New("GET: bytes differ from the blob's")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatalf("handler: %v", err)
		}
	}
	e.cache.Flush()
	if st := e.cache.Stats(); st.Fills != 1 || st.Entries != 1 || st.FilledBytes != int64(len(data)) || st.Misses != 4 {
		t.Fatalf("want one fill of four cold GETs: %+v", st)
	}
	if got, err := httpGet(srv.URL + "/" + d.String()); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET from the cache: %v", err)
	}
	if st := e.cache.Stats(); st.Hits != 1 {
		t.Fatalf("the fifth GET was not a hit: %+v", st)
	}
}

func httpGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// S3 killed in the middle of a cold GET: the client gets a truncated body (the bytes it
// got are the blob's) and nothing is cached.
func TestCacheColdGETStoreKilled(t *testing.T) {
	e, d, data, gate, srv, done := newGatedBlob(t)
	resp, err := http.Get(srv.URL + "/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5<<20)
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		t.Fatal(err)
	}
	e.s3.Stop()
	gate.open()
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	got = append(got, rest...)
	if err == nil || len(got) >= len(data) {
		t.Fatalf("GET with S3 killed: %d bytes of %d, err %v; want a truncated body", len(got), len(data), err)
	}
	if !bytes.Equal(got, data[:len(got)]) {
		t.Fatal("the bytes before the cut differ from the blob's")
	}
	if err := <-done; err == nil {
		t.Fatal("the handler saw no error")
	}
	e.checkDiscarded(t, "a cut fill")
}

// A client that leaves in the middle of a cold GET, while S3 holds back the rest, ends the
// S3 read at once: nothing is cached, no file, goroutine or descriptor is left.
func TestCacheColdGETClientLeaves(t *testing.T) {
	e, d, data, gate, srv, done := newGatedBlob(t)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	goroutines, fds := runtime.NumGoroutine(), fdCount(t)
	resp, err := client.Get(srv.URL + "/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, got); err != nil || !bytes.Equal(got, data[:len(got)]) {
		t.Fatalf("first MiB: %v", err)
	}
	resp.Body.Close() // unread: the connection closes
	select {
	case <-done: // the handler returned while S3 still held the rest back
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not return after the client left")
	}
	e.checkDiscarded(t, "an abandoned fill")
	gate.open()
	settle(t, "goroutines", goroutines, runtime.NumGoroutine)
	settle(t, "descriptors", fds, func() int { return fdCount(t) })
}

// checkDiscarded fails t unless the cache, once its commits are done, discarded one fill
// (what) and holds no entry and no fill file.
func (e *cacheEnv) checkDiscarded(t *testing.T, what string) {
	t.Helper()
	e.cache.Flush()
	if st := e.cache.Stats(); st.Entries != 0 || st.Fills != 0 || st.Discarded != 1 {
		t.Fatalf("%s was kept: %+v", what, st)
	}
	if ents := e.incomplete(); len(ents) != 0 {
		t.Fatalf("fill files left: %v", ents)
	}
}

// newGatedBlob is a cache over versitygw behind a gate proxy that holds back all but the
// first 6 MiB of each answer, a 24 MiB blob in it, and a server of its blobs reporting each
// GET's end on done.
func newGatedBlob(t *testing.T) (*cacheEnv, digest.Digest, []byte, *gateProxy, *httptest.Server, chan error) {
	e := newCacheEnv(t, 256<<20)
	d, data := e.put(24 << 20)
	gate := startGateProxy(t, e.s3.Addr, 6<<20)
	e.openVia(gate.ln.Addr().String())
	done := make(chan error, 2)
	return e, d, data, gate, e.blobServer(done), done
}

// A cache disk slower than the store does not slow the client: here the cache writer is
// held before its first write until the client has every byte and the handler has returned.
// The writer was detached (it fell more than its window behind) and completes the file from
// the store with a ranged GET at its offset, behind the GET: the entry is the blob's.
func TestCacheColdGETSlowCacheDisk(t *testing.T) {
	e := newCacheEnv(t, 256<<20)
	d, data := e.put(24<<20 + 5)
	release := make(chan struct{})
	var offs []int64
	defer storage.SetFillWriteHook(func(off int64) {
		<-release
		offs = append(offs, off)
	})()
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // a failing test must not leave the writer held
	done := make(chan error, 1)
	srv := e.blobServer(done)
	gets := e.s3.Requests("s3_GetObject", "p/data/")
	got, err := httpGet(srv.URL + "/" + d.String())
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET with the cache writer held: %d bytes of %d, %v", len(got), len(data), err)
	}
	if err := <-done; err != nil {
		t.Fatalf("handler: %v", err)
	}
	if st := e.cache.Stats(); st.Entries != 0 || st.Fills != 0 || st.Discarded != 0 {
		t.Fatalf("the held fill ended early: %+v", st)
	}
	free()
	e.cache.Flush()
	if st := e.cache.Stats(); st.Entries != 1 || st.Fills != 1 || st.FilledBytes != int64(len(data)) {
		t.Fatalf("the detached fill was not completed: %+v", st)
	}
	if n := e.s3.Requests("s3_GetObject", "p/data/") - gets; n != 2 {
		t.Fatalf("%d GETs of the object, want 2 (the client's, the rest of the fill)", n)
	}
	// The writer wrote what it had been handed, then the rest from the store from there.
	if len(offs) < 2 || offs[0] != 0 || offs[len(offs)-1] >= int64(len(data)) {
		t.Fatalf("writes at %v", offs)
	}
	if !e.get(d, data) {
		t.Fatal("not served from the cache")
	}
}

// A client that leaves after the cache writer was detached: the fill is discarded, and the
// rest of it is never fetched.
func TestCacheColdGETSlowCacheDiskClientLeaves(t *testing.T) {
	e := newCacheEnv(t, 256<<20)
	d, data := e.put(64 << 20) // more than the sockets between hold
	release := make(chan struct{})
	defer storage.SetFillWriteHook(func(int64) { <-release })()
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()
	done := make(chan error, 1)
	srv := e.blobServer(done)
	gets := e.s3.Requests("s3_GetObject", "p/data/")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(srv.URL + "/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 20<<20) // past the writer's window: it is detached by now
	if _, err := io.ReadFull(resp.Body, got); err != nil || !bytes.Equal(got, data[:len(got)]) {
		t.Fatalf("first 20 MiB: %v", err)
	}
	resp.Body.Close()
	if err := <-done; err == nil {
		t.Fatal("the handler saw no error")
	}
	free()
	e.checkDiscarded(t, "a fill whose client left")
	if n := e.s3.Requests("s3_GetObject", "p/data/") - gets; n != 1 {
		t.Fatalf("%d GETs of the object, want 1 (the client's)", n)
	}
}

// A cold GET of a blob another GET is filling follows that fill (the cache file as its
// writer publishes it) instead of reading the store again: here the writer is held until the
// first GET is over and the second has joined, then completes the file from the store; the
// store served two GETs (the first client's, the fill's rest), not three.
func TestCacheColdGETFollowsFill(t *testing.T) {
	e := newCacheEnv(t, 256<<20)
	d, data := e.put(24<<20 + 5)
	release := make(chan struct{})
	defer storage.SetFillWriteHook(func(int64) { <-release })()
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()
	done := make(chan error, 2)
	srv := e.blobServer(done)
	gets := e.s3.Requests("s3_GetObject", "p/data/")
	if got, err := httpGet(srv.URL + "/" + d.String()); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("first GET: %d bytes of %d, %v", len(got), len(data), err)
	}
	second := make(chan error, 1)
	go func() {
		got, err := httpGet(srv.URL + "/" + d.String())
		if err == nil && !bytes.Equal(got, data) {
			err = errors.New("second GET: bytes differ from the blob's")
		}
		second <- err
	}()
	// Once it has missed the cache, the second GET finds the fill (held) under way.
	settle(t, "GETs that did not miss the cache yet", 0, func() int { return 2 - int(e.cache.Stats().Misses) })
	free()
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("handler: %v", err)
		}
	}
	e.cache.Flush()
	if st := e.cache.Stats(); st.Fills != 1 || st.Entries != 1 || st.Misses != 2 || st.Hits != 0 {
		t.Fatalf("want one fill of two cold GETs: %+v", st)
	}
	if n := e.s3.Requests("s3_GetObject", "p/data/") - gets; n != 2 {
		t.Fatalf("%d GETs of the object, want 2 (the first client's, the rest of the fill)", n)
	}
}

// A prefetch (nobody waits for its bytes) is paced by the cache writer instead of detaching
// it: a cache disk slower than the store still costs the store one read of the object.
func TestCachePrefetchPacedByWriter(t *testing.T) {
	e := newCacheEnv(t, 256<<20)
	d, data := e.put(32 << 20)
	defer storage.SetFillWriteHook(func(int64) { time.Sleep(5 * time.Millisecond) })()
	gets := e.s3.Requests("s3_GetObject", "p/data/")
	if err := e.store.Prefetch(ctx, "11111111-2222-3333-4444-555555555555", d); err != nil {
		t.Fatal(err)
	}
	if n := e.s3.Requests("s3_GetObject", "p/data/") - gets; n != 1 {
		t.Fatalf("%d GETs of the object for one prefetch, want 1", n)
	}
	if !e.get(d, data) {
		t.Fatal("prefetched blob not served from the cache")
	}
}
