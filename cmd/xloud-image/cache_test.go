package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/internal/testenv"
)

// cacheEntries reads xloud_cache_entries from the registry port's /metrics.
func cacheEntries(t *testing.T, srv *testenv.Server) string {
	t.Helper()
	res, err := http.Get(srv.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`(?m)^xloud_cache_entries (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("/metrics has no xloud_cache_entries")
	}
	return string(m[1])
}

func waitEntries(t *testing.T, srv *testenv.Server, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); cacheEntries(t, srv) != want; time.Sleep(25 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("xloud_cache_entries stays %s, want %s", cacheEntries(t, srv), want)
		}
	}
}

// TestCacheRegistryBlobs: registry blob GETs of a server with --cache-dir over S3 fill the
// cache on the first whole read; later GETs, ranges included, come from it without asking
// S3; once the image is deleted and collected (`xloud-image gc` through the running server)
// the copy is gone and nothing is served.
func TestCacheRegistryBlobs(t *testing.T) {
	s3 := testenv.StartS3(t)
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--store", "s3=" + s3.URL(s3.Bucket("xloud"), "blobs"),
		"--cache-dir", filepath.Join(t.TempDir(), "cache")}})
	c := &client{t: t, base: srv.URL()}
	p, err := c.pushImage("cache/img", "v1", 6<<20+7)
	if err != nil {
		t.Fatal(err)
	}
	var layer []byte
	var path string
	for d, b := range p.blobs {
		if len(b) > len(layer) {
			layer, path = b, "/v2/cache/img/blobs/"+d.String()
		}
	}
	// A ranged GET of a cold blob streams from S3 and caches nothing.
	resp := c.must(206, "GET", path, nil, "Range", "bytes=10-19")
	if _, b, _ := c.do("GET", path, nil, "Range", "bytes=10-19"); !bytes.Equal(b, layer[10:20]) || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 10-19/%d", len(layer)) {
		t.Fatalf("cold range: %q %v", b, resp.Header)
	}
	if n := cacheEntries(t, srv); n != "0" {
		t.Fatalf("a ranged GET filled the cache: %s entries", n)
	}
	if _, b, err := c.do("GET", path, nil); err != nil || !bytes.Equal(b, layer) {
		t.Fatalf("cold GET: %v, %d bytes", err, len(b))
	}
	waitEntries(t, srv, "1")
	gets := s3.Requests("GET", "/xloud/blobs/data/")
	for _, rng := range []string{"", "bytes=5000000-5000099", "bytes=-10"} {
		var hdr []string
		want, status := layer, 200
		switch rng {
		case "bytes=5000000-5000099":
			hdr, want, status = []string{"Range", rng}, layer[5000000:5000100], 206
		case "bytes=-10":
			hdr, want, status = []string{"Range", rng}, layer[len(layer)-10:], 206
		}
		resp, b, err := c.do("GET", path, nil, hdr...)
		if err != nil || resp.StatusCode != status || !bytes.Equal(b, want) {
			t.Fatalf("cached GET %q: %v %v, %d bytes", rng, err, resp, len(b))
		}
	}
	if n := s3.Requests("GET", "/xloud/blobs/data/"); n != gets {
		t.Fatalf("GETs of a cached blob reached S3: %d, was %d", n, gets)
	}
	// Deleted and collected: gone from the cache, and 404.
	c.must(202, "DELETE", "/v2/cache/img/manifests/"+digest.FromBytes(p.manifest).String(), nil)
	out, errOut, code := run(t, nil, "gc", "--data-dir", srv.DataDir, "--grace", "0s")
	if code != 0 {
		t.Fatalf("gc: exit %d %s", code, errOut)
	}
	if !bytes.Contains([]byte(out), []byte(path[len(path)-71:])) {
		t.Fatalf("gc did not collect the layer: %s", out)
	}
	waitEntries(t, srv, "0")
	c.must(404, "GET", path, nil)
}
