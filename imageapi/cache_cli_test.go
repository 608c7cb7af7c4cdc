package imageapi_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// metricValue reads one unlabelled sample from the server's /metrics.
func metricValue(t *testing.T, srv *testenv.Server, name string) float64 {
	t.Helper()
	res, err := http.Get("http://" + srv.APIAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestCacheGlanceCLI drives the cache of a live server (S3 store, --cache-dir) with the
// real glance CLI's cache commands, downloads through it, reads its metrics, and restarts
// the server to see the cache kept.
func TestCacheGlanceCLI(t *testing.T) {
	t.Parallel()
	s3 := testenv.StartS3(t)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "cache-admin-pw",
		"--store", "s3=" + s3.URL(s3.Bucket("images"), ""), "--cache-dir", cacheDir, "--cache-max-size", "100000000"}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.Log())
		}
	})
	idc := testenv.AdminIdentity(t, "http://"+srv.APIAddr, nil, "cache-admin-pw")
	demo := idc.Project(t, "demo")
	idc.User(t, demo, "alice", "alice-pw", "member")
	alice := newCLI(t, srv, "alice", "alice-pw", "demo")
	admin := newCLI(t, srv, "admin", "cache-admin-pw", "admin")
	endpoint := func() []string { return []string{"--os-image-url", "http://" + srv.APIAddr} }
	glance := func(c *cli, args ...string) (string, string) {
		out, errOut, err := c.run("glance", append(endpoint(), args...)...)
		if err != nil {
			return out, errOut + err.Error()
		}
		return out, errOut
	}

	dir := t.TempDir()
	raw := rawImage(3 << 20)
	rawPath := filepath.Join(dir, "disk.raw")
	os.WriteFile(rawPath, raw, 0o644)
	id := alice.image("create", "--file", rawPath, "--disk-format", "raw", "cached-disk")["id"].(string)

	// Non-admins are refused, by the CLI's own messages.
	if _, errOut := glance(alice, "cache-list"); !strings.Contains(errOut, "403") {
		t.Fatalf("alice cache-list: %s", errOut)
	}
	if _, errOut := glance(alice, "cache-queue", id); !strings.Contains(errOut, "You are not permitted to queue") {
		t.Fatalf("alice cache-queue: %s", errOut)
	}
	if _, errOut := glance(admin, "cache-queue", id); errOut != "" {
		t.Fatalf("admin cache-queue: %s", errOut)
	}
	rowRE := regexp.MustCompile(`(?m)^\| ` + id + ` \| cached `)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, errOut := glance(admin, "cache-list")
		if rowRE.MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache-list never shows %s cached:\n%s%s", id, out, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A download is served from the cache: no GET of the object reaches S3.
	gets := s3.Requests("GET", "/images/")
	savePath := filepath.Join(dir, "saved.raw")
	alice.ok("openstack", "image", "save", "--file", savePath, id)
	sameFile(t, savePath, raw)
	if n := s3.Requests("GET", "/images/"); n != gets {
		t.Fatalf("download of a cached image went to S3 (%d GETs, was %d)", n, gets)
	}
	if hits := metricValue(t, srv, "xloud_cache_hits_total"); hits < 1 {
		t.Fatalf("xloud_cache_hits_total %v", hits)
	}
	if v := metricValue(t, srv, "xloud_cache_bytes"); v != float64(len(raw)) {
		t.Fatalf("xloud_cache_bytes %v, want %d", v, len(raw))
	}
	if v := metricValue(t, srv, "xloud_cache_filled_bytes_total"); v != float64(len(raw)) {
		t.Fatalf("xloud_cache_filled_bytes_total %v", v)
	}
	if v := metricValue(t, srv, "xloud_cache_max_bytes"); v != 100000000 {
		t.Fatalf("xloud_cache_max_bytes %v", v)
	}

	// A restart keeps the cache and its hit count.
	srv.Stop()
	srv.Start() // on new ports: new clients
	alice = newCLI(t, srv, "alice", "alice-pw", "demo")
	admin = newCLI(t, srv, "admin", "cache-admin-pw", "admin")
	out, _ := glance(admin, "cache-list")
	if !rowRE.MatchString(out) {
		t.Fatalf("cache lost by a restart:\n%s", out)
	}
	if v := metricValue(t, srv, "xloud_cache_entries"); v != 1 {
		t.Fatalf("xloud_cache_entries after restart %v", v)
	}
	alice.ok("openstack", "image", "save", "--file", savePath, id)
	sameFile(t, savePath, raw)
	if n := s3.Requests("GET", "/images/"); n != gets {
		t.Fatalf("download after restart went to S3")
	}

	// cache-clear --target queue leaves it; cache-delete removes it.
	if _, errOut := glance(admin, "cache-clear", "--target", "queue"); errOut != "" {
		t.Fatalf("cache-clear queue: %s", errOut)
	}
	if out, _ := glance(admin, "cache-list"); !rowRE.MatchString(out) {
		t.Fatalf("clearing the queue removed the cached image:\n%s", out)
	}
	if _, errOut := glance(admin, "cache-delete", id); errOut != "" {
		t.Fatalf("cache-delete: %s", errOut)
	}
	if out, _ := glance(admin, "cache-list"); strings.Contains(out, id) {
		t.Fatalf("cache-delete left the image:\n%s", out)
	}
	if v := metricValue(t, srv, "xloud_cache_entries"); v != 0 {
		t.Fatalf("xloud_cache_entries after delete %v", v)
	}
	// The next download is a miss again and fills the cache (committed just behind it).
	alice.ok("openstack", "image", "save", "--file", savePath, id)
	sameFile(t, savePath, raw)
	for deadline := time.Now().Add(10 * time.Second); metricValue(t, srv, "xloud_cache_entries") != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("download did not refill the cache")
		}
	}
	if _, errOut := glance(admin, "cache-clear"); errOut != "" {
		t.Fatalf("cache-clear: %s", errOut)
	}
	if v := metricValue(t, srv, "xloud_cache_entries"); v != 0 {
		t.Fatalf("cache-clear left %v entries", v)
	}
}
