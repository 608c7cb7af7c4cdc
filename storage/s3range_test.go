package storage_test

import (
	"bytes"
	"errors"
	"io"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/xloud/xloud-image/storage"
)

// TestS3IgnoredRange: between the store and versitygw stands a proxy that drops the Range
// header, so S3 answers every ranged GET with the whole object. A read from the middle of a
// blob must then fail as the store's fault, never hand out the object's first bytes as if
// they were the ones asked for; a read from the start still gets the blob.
func TestS3IgnoredRange(t *testing.T) {
	e := newCacheEnv(t, 256<<20)
	d, data := e.put(3 << 20)
	up, _ := url.Parse("http://" + e.s3.Addr)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(up)
		pr.Out.Host = pr.In.Host // the presigned URL was signed for the proxy's host
		pr.Out.Header.Del("Range")
	}}
	proxy := httptest.NewServer(rp)
	t.Cleanup(proxy.Close)
	e.openVia(proxy.Listener.Addr().String())

	f, size, err := e.store.OpenBlob(t.Context(), "proj/img", d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if size != int64(len(data)) {
		t.Fatalf("size %d, want %d", size, len(data))
	}
	if _, err := f.Seek(1<<20, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := f.Read(buf)
	if err == nil || !errors.Is(err, storage.ErrStoreUnavailable) {
		t.Fatalf("read from 1 MiB with the Range dropped: %d bytes, err %v; want the store's error", n, err)
	}
	if n > 0 && !bytes.Equal(buf[:n], data[1<<20:1<<20+n]) {
		t.Fatal("read from 1 MiB returned bytes from elsewhere in the blob")
	}

	// From the start, the whole object is what was asked for.
	g, _, err := e.store.OpenBlob(t.Context(), "proj/img", d)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	got, err := io.ReadAll(g)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("whole read through the proxy: %d bytes, %v", len(got), err)
	}
}
