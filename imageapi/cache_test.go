package imageapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// cacheEnv is an Image API whose images live in S3 (a real versitygw) behind a node cache,
// with the prefetch worker running, as serve --cache-dir runs it.
type cacheEnv struct {
	*env
	s3    *testenv.S3
	cache *storage.Cache
}

func newCacheEnv(t *testing.T) *cacheEnv {
	t.Helper()
	s3 := testenv.StartS3(t)
	dir := t.TempDir()
	b, err := storage.OpenS3(s3.URL(s3.Bucket("images"), ""))
	if err != nil {
		t.Fatal(err)
	}
	m, err := meta.OpenBolt(filepath.Join(dir, "meta.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := storage.OpenCache(filepath.Join(dir, "cache"), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.NewStores(m, c.WrapAll([]storage.NamedStore{{Name: "s3", Store: b}}), "")
	if err != nil {
		t.Fatal(err)
	}
	store.Cache = c
	store.PrefetchDelay = 300 * time.Millisecond // as serve's --cache-prefetch-delay, shorter
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); store.RunPrefetch(ctx, slog.Default()) }()
	t.Cleanup(func() { cancel(); <-done; c.Close(); m.Close() })
	return &cacheEnv{env: newEnvOver(t, store), s3: s3, cache: c}
}

// activeImage creates and uploads a raw image of n random bytes as member-a.
func (e *cacheEnv) activeImage(n int) (string, []byte) {
	id := e.create("member-a", map[string]any{"name": "cached", "disk_format": "raw", "container_format": "bare"})
	data := make([]byte, n)
	rand.Read(data)
	e.upload("member-a", id, data)
	return id, data
}

// state is GET /v2/cache as admin: the cached image ids and the queued ones.
func (e *cacheEnv) state() ([]map[string]any, []string) {
	e.t.Helper()
	r := e.do("admin", "GET", "/v2/cache", nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET /v2/cache: %d %s", r.status, r.body)
	}
	m := r.json(e.t)
	var cached []map[string]any
	for _, c := range m["cached_images"].([]any) {
		cached = append(cached, c.(map[string]any))
	}
	var queued []string
	for _, q := range m["queued_images"].([]any) {
		queued = append(queued, q.(string))
	}
	return cached, queued
}

func ids(cached []map[string]any) []string {
	var out []string
	for _, c := range cached {
		out = append(out, c["image_id"].(string))
	}
	return out
}

// waitCached polls GET /v2/cache as tempest's wait_for_caching does.
func (e *cacheEnv) waitCached(id string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cached, _ := e.state()
		for _, c := range cached {
			if c["image_id"] == id {
				return c
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("image %s not cached: %v", id, cached)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCacheTempestCycle is tempest's ImageCachingTest.test_image_caching_cycle, step by step.
func TestCacheTempestCycle(t *testing.T) {
	e := newCacheEnv(t)
	if r := e.do("member-a", "GET", "/v2/cache", nil); r.status != http.StatusForbidden {
		t.Fatalf("non-admin list: %d %s", r.status, r.body)
	}
	if cached, queued := e.state(); len(cached) != 0 || len(queued) != 0 {
		t.Fatalf("fresh cache: %v %v", cached, queued)
	}
	if r := e.do("admin", "PUT", "/v2/cache/non-existing-image-id", nil); r.status != http.StatusNotFound {
		t.Fatalf("queue unknown image: %d %s", r.status, r.body)
	}
	queuedImg := e.create("member-a", map[string]any{"name": "queued"})
	if r := e.do("admin", "PUT", "/v2/cache/"+queuedImg, nil); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "active") {
		t.Fatalf("queue a queued image: %d %s", r.status, r.body)
	}
	// Uploaded chunked, as tempest does: the server then reads the disk back to hash its
	// containerDisk layer, a pass of its own that must not fill the cache.
	id := e.create("member-a", map[string]any{"name": "first", "disk_format": "raw", "container_format": "bare", "visibility": "private"})
	data := make([]byte, 2<<20)
	rand.Read(data)
	req, _ := http.NewRequest("PUT", e.srv.URL+"/v2/images/"+id+"/file", io.MultiReader(bytes.NewReader(data)))
	req.Header.Set("X-Auth-Token", e.token["member-a"])
	req.Header.Set("Content-Type", "application/octet-stream")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusNoContent {
		t.Fatalf("chunked upload: %v %v", res, err)
	}
	if r := e.do("admin", "PUT", "/v2/cache/"+id, nil); r.status != http.StatusAccepted {
		t.Fatalf("queue: %d %s", r.status, r.body)
	}
	// Tempest 33 looks right away: queued, not yet cached.
	if cached, queued := e.state(); len(cached) != 0 || !slices.Equal(queued, []string{id}) {
		t.Fatalf("right after queueing: cached %v, queued %v", cached, queued)
	}
	c := e.waitCached(id)
	if c["size"].(float64) != 2<<20 || c["hits"].(float64) != 0 || c["last_modified"].(float64) < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Fatalf("cached image: %v", c)
	}
	if _, queued := e.state(); len(queued) != 0 {
		t.Fatalf("still queued after caching: %v", queued)
	}
	if r := e.do("admin", "DELETE", "/v2/cache", nil); r.status != http.StatusNoContent {
		t.Fatalf("clear: %d %s", r.status, r.body)
	}
	if cached, queued := e.state(); len(cached) != 0 || len(queued) != 0 {
		t.Fatalf("after clear: %v %v", cached, queued)
	}
	if r := e.do("admin", "DELETE", "/v2/cache", nil, "X-Image-Cache-Clear-Target", "invalid"); r.status != http.StatusBadRequest {
		t.Fatalf("clear target invalid: %d %s", r.status, r.body)
	}
	// tearDown's cache_delete of an image no longer cached: it exists, so 204.
	if r := e.do("admin", "DELETE", "/v2/cache/"+id, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete uncached image from cache: %d %s", r.status, r.body)
	}
}

func TestCacheServesDownloads(t *testing.T) {
	e := newCacheEnv(t)
	id, data := e.activeImage(6 << 20)
	// A ranged download of a cold image streams from S3 and fills nothing.
	r := e.do("reader-a", "GET", "/v2/images/"+id+"/file", nil, "Range", "bytes=100-199")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, data[100:200]) {
		t.Fatalf("ranged cold download: %d", r.status)
	}
	if cached, _ := e.state(); len(cached) != 0 {
		t.Fatalf("a ranged download filled the cache: %v", cached)
	}
	// A whole download fills it (Glance caches on download) and names the image.
	if r := e.do("reader-a", "GET", "/v2/images/"+id+"/file", nil); r.status != http.StatusOK || !bytes.Equal(r.body, data) {
		t.Fatalf("cold download: %d", r.status)
	}
	e.waitCached(id)
	gets := e.s3.Requests("GET", "/images/")
	for _, rng := range []string{"", "bytes=5000000-"} {
		r := e.do("reader-a", "GET", "/v2/images/"+id+"/file", nil, "Range", rng)
		want := data
		if rng != "" {
			want = data[5000000:]
		}
		if !bytes.Equal(r.body, want) {
			t.Fatalf("cached download %q: %d, %d bytes", rng, r.status, len(r.body))
		}
	}
	if n := e.s3.Requests("GET", "/images/"); n != gets {
		t.Fatalf("cached downloads went to S3: %d GETs, was %d", n, gets)
	}
	if c := e.waitCached(id); c["hits"].(float64) != 2 {
		t.Fatalf("hits: %v", c)
	}
	// Deleting the image: it is no longer listed, nor downloadable, though the blob's
	// bytes stay in the cache until GC removes them.
	if r := e.do("member-a", "DELETE", "/v2/images/"+id, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete image: %d %s", r.status, r.body)
	}
	if cached, _ := e.state(); slices.Contains(ids(cached), id) {
		t.Fatalf("deleted image listed as cached: %v", cached)
	}
	if r := e.do("admin", "GET", "/v2/images/"+id+"/file", nil); r.status == http.StatusOK {
		t.Fatalf("deleted image downloaded: %d", r.status)
	}
	if r := e.do("admin", "PUT", "/v2/cache/"+id, nil); r.status != http.StatusNotFound {
		t.Fatalf("queue a deleted image: %d %s", r.status, r.body)
	}
	rep, err := e.store.CollectGarbage(ctx, storage.GCOptions{})
	if err != nil || len(rep.Blobs) == 0 {
		t.Fatalf("gc: %+v %v", rep, err)
	}
	if st := e.cache.Stats(); st.Entries != 0 {
		t.Fatalf("gc left %d cache entries", st.Entries)
	}
}

func TestCacheAPIRefusals(t *testing.T) {
	e := newCacheEnv(t)
	id, _ := e.activeImage(1 << 20)
	if r := e.do("admin", "PUT", "/v2/cache/"+id, nil); r.status != http.StatusAccepted {
		t.Fatalf("queue: %d %s", r.status, r.body)
	}
	e.waitCached(id)
	steps := []struct {
		who, method, path string
		hdr               []string
		status            int
	}{
		// Non-admins: refused, whoever owns the image (Glance: cache_* are ADMIN).
		{"member-a", "GET", "/v2/cache", nil, 403},
		{"member-a", "PUT", "/v2/cache/" + id, nil, 403},
		{"member-a", "DELETE", "/v2/cache/" + id, nil, 403},
		{"member-a", "DELETE", "/v2/cache", nil, 403},
		{"reader-a", "DELETE", "/v2/cache", []string{"X-Image-Cache-Clear-Target", "both"}, 403},
		{"", "GET", "/v2/cache", nil, 401},
		// Glance looks the image up as the caller: another project's private image is
		// not found (not refused, which would tell that it exists).
		{"member-b", "PUT", "/v2/cache/" + id, nil, 404},
		{"member-b", "DELETE", "/v2/cache/" + id, nil, 404},
		// Glance looks the image up before the policy: unknown is 404 to anyone.
		{"member-a", "PUT", "/v2/cache/00000000-0000-0000-0000-000000000000", nil, 404},
		{"admin", "PUT", "/v2/cache/not-a-uuid", nil, 404},
		{"admin", "PUT", "/v2/cache/..%2f..%2fetc", nil, 404},
		{"admin", "DELETE", "/v2/cache/00000000-0000-0000-0000-000000000000", nil, 404},
		{"admin", "DELETE", "/v2/cache", []string{"X-Image-Cache-Clear-Target", "both"}, 400},
		{"admin", "DELETE", "/v2/cache", []string{"X-Image-Cache-Clear-Target", "cache,queue"}, 400},
		{"admin", "POST", "/v2/cache", nil, 405},
		{"admin", "PATCH", "/v2/cache/" + id, nil, 405},
	}
	for _, s := range steps {
		r := e.do(s.who, s.method, s.path, nil, s.hdr...)
		if r.status != s.status {
			t.Errorf("%s %s %s %v: %d %s, want %d", s.who, s.method, s.path, s.hdr, r.status, r.body, s.status)
		}
		if s.status != 405 && s.status != 401 && !strings.Contains(string(r.body), `"code"`) && !strings.Contains(string(r.body), "title") {
			t.Errorf("%s %s: error body not in Glance's format: %s", s.method, s.path, r.body)
		}
	}
	// None of that changed anything.
	cached, queued := e.state()
	if len(cached) != 1 || cached[0]["image_id"] != id || len(queued) != 0 {
		t.Fatalf("refused requests changed the cache: %v %v", cached, queued)
	}
	// Clear targets: queue leaves the cache, cache leaves the queue (upper case is fine).
	if r := e.do("admin", "DELETE", "/v2/cache", nil, "X-Image-Cache-Clear-Target", "QUEUE"); r.status != 204 {
		t.Fatalf("clear queue: %d %s", r.status, r.body)
	}
	if cached, _ := e.state(); len(cached) != 1 {
		t.Fatalf("clearing the queue emptied the cache: %v", cached)
	}
	if err := e.cache.Queue(id, digest.Digest("sha256:"+strings.Repeat("0", 64))); err != nil { // stays queued: no such blob
		t.Fatal(err)
	}
	if r := e.do("admin", "DELETE", "/v2/cache", nil, "X-Image-Cache-Clear-Target", "cache"); r.status != 204 {
		t.Fatalf("clear cache: %d %s", r.status, r.body)
	}
	cached, _ = e.state()
	if len(cached) != 0 {
		t.Fatalf("after clearing the cache: %v", cached)
	}
	// DELETE /v2/cache/{id} of an image only queued: 204 and gone from the queue.
	other, _ := e.activeImage(1000)
	if err := e.cache.Queue(other, digest.Digest("sha256:"+strings.Repeat("1", 64))); err != nil {
		t.Fatal(err)
	}
	if r := e.do("admin", "DELETE", "/v2/cache/"+other, nil); r.status != 204 {
		t.Fatalf("delete queued: %d %s", r.status, r.body)
	}
	if _, queued := e.state(); slices.Contains(queued, other) {
		t.Fatalf("still queued: %v", queued)
	}
}

func TestCacheAPIWithoutCache(t *testing.T) {
	e := newEnv(t)
	if r := e.do("admin", "GET", "/v2/cache", nil); r.status != http.StatusNotFound || !strings.Contains(string(r.body), "not supported") {
		t.Fatalf("GET /v2/cache without a cache: %d %s", r.status, r.body)
	}
	if r := e.do("member-a", "GET", "/v2/cache", nil); r.status != http.StatusForbidden {
		t.Fatalf("non-admin without a cache: %d %s", r.status, r.body)
	}
	if r := e.do("", "GET", "/v2.16/images", nil); r.status != http.StatusMultipleChoices {
		t.Fatalf("v2.16 without a cache: %d", r.status)
	}
}

func TestCacheVersions(t *testing.T) {
	e := newCacheEnv(t)
	r := e.do("", "GET", "/versions", nil)
	var got []string
	for _, v := range r.json(t)["versions"].([]any) {
		got = append(got, v.(map[string]any)["id"].(string)+"="+v.(map[string]any)["status"].(string))
	}
	want := "v2.16=CURRENT,v2.15=SUPPORTED,v2.14=SUPPORTED,v2.13=SUPPORTED"
	if !strings.HasPrefix(strings.Join(got, ","), want) {
		t.Fatalf("versions with a cache: %v", got)
	}
	if r := e.do("admin", "GET", "/v2.14/cache", nil); r.status != http.StatusOK {
		t.Fatalf("GET /v2.14/cache: %d %s", r.status, r.body)
	}
}
