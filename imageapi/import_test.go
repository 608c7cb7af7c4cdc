package imageapi_test

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/imageapi"
	"github.com/xloud/xloud-image/internal/testenv"
)

func TestGlanceDirectImport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	data := rawImage(70000)
	id := e.create("member-a", map[string]any{"name": "gd", "disk_format": "raw", "container_format": "bare"})
	// all_stores: true, as tempest sends it: with one store, that store.
	importBody := map[string]any{"method": map[string]any{"name": "glance-direct"}, "all_stores": true}
	if r := e.do("member-a", "POST", "/v2/images/"+id+"/import", importBody); r.status != 409 {
		t.Fatalf("import before staging: %d %s", r.status, r.body)
	}
	if r := e.do("member-a", "PUT", "/v2/images/"+id+"/stage", data, "Content-Type", "application/json"); r.status != 415 {
		t.Fatalf("stage as JSON: %d", r.status)
	}
	if r := e.do("member-a", "PUT", "/v2/images/"+id+"/stage", data, "Content-Type", "application/octet-stream", "X-Openstack-Image-Size", "10"); r.status != 400 {
		t.Fatalf("stage over its size: %d", r.status)
	}
	if img := e.show(id); img["status"] != "queued" {
		t.Fatalf("after a failed stage: %v", img["status"])
	}
	if r := e.do("member-a", "PUT", "/v2/images/"+id+"/stage", data, "Content-Type", "application/octet-stream"); r.status != 204 {
		t.Fatalf("stage: %d %s", r.status, r.body)
	}
	sum := md5.Sum(data)
	img := e.show(id)
	// As in Glance, staging records the size; checksum and multihash are set by the import.
	if img["status"] != "uploading" || img["size"] != 70000.0 || img["checksum"] != nil || img["os_hash_algo"] != nil ||
		img["os_hash_value"] != nil || img["virtual_size"] != nil {
		t.Fatalf("staged: %v", img)
	}
	for _, k := range []string{"staged", "disk_digest", "repository", "lease"} {
		if _, ok := img[k]; ok {
			t.Fatalf("staged image shows internal field %s: %v", k, img)
		}
	}
	if got := names(t, e.do("member-a", "GET", "/v2/images?checksum="+hex.EncodeToString(sum[:]), nil)); len(got) != 0 {
		t.Fatalf("staged image listed by its staged data's checksum: %v", got)
	}
	if r := e.do("member-a", "PUT", "/v2/images/"+id+"/stage", data, "Content-Type", "application/octet-stream"); r.status != 409 {
		t.Fatalf("second stage: %d", r.status)
	}
	if r := e.do("member-a", "PUT", "/v2/images/"+id+"/file", data, "Content-Type", "application/octet-stream"); r.status != 409 {
		t.Fatalf("upload to a staged image: %d", r.status)
	}
	if r := e.do("member-a", "GET", "/v2/images/"+id+"/file", nil); r.status != 204 {
		t.Fatalf("download of staged data: %d", r.status)
	}
	for _, bad := range []struct {
		body any
		want int
	}{
		{map[string]any{}, 400},
		{map[string]any{"method": map[string]any{"name": "copy-image"}}, 400},
		{map[string]any{"method": map[string]any{"name": "glance-direct"}, "stores": []string{"fast"}}, 400},
		{map[string]any{"method": map[string]any{"name": "glance-direct"}, "all_stores_must_succeed": "yes"}, 400},
		{map[string]any{"method": map[string]any{"name": "glance-direct"}, "all_stores_must_succeed": false}, 400},
		{map[string]any{"method": map[string]any{"name": "glance-direct"}, "all_stores": "all"}, 400},
		{map[string]any{"method": map[string]any{"name": "web-download", "uri": "http://x/y"}}, 409},
	} {
		if r := e.do("member-a", "POST", "/v2/images/"+id+"/import", bad.body); r.status != bad.want {
			t.Errorf("import %v: %d, want %d: %s", bad.body, r.status, bad.want, r.body)
		}
	}
	if r := e.do("reader-a", "POST", "/v2/images/"+id+"/import", importBody); r.status != 403 {
		t.Fatalf("reader import: %d", r.status)
	}
	if r := e.do("member-a", "POST", "/v2/images/"+id+"/import", importBody); r.status != 202 || len(r.body) != 0 {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	img = e.waitStatus(id, "active")
	if img["checksum"] != hex.EncodeToString(sum[:]) || img["os_hash_algo"] != "sha256" {
		t.Fatalf("imported: %v", img)
	}
	if r := e.do("member-a", "GET", "/v2/images/"+id+"/file", nil); r.status != 200 || !bytes.Equal(r.body, data) {
		t.Fatalf("download after import: %d", r.status)
	}
	if r := e.do("member-a", "POST", "/v2/images/"+id+"/import", importBody); r.status != 409 {
		t.Fatalf("import of an active image: %d", r.status)
	}
}

func TestWebDownloadImport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	data := rawImage(300000)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/disk.img":
			w.Write(data)
		case "/moved":
			http.Redirect(w, r, "/disk.img", http.StatusFound)
		case "/to-ftp":
			http.Redirect(w, r, "ftp://example.com/disk.img", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer web.Close()
	imp := func(id, uri string) resp {
		return e.do("member-a", "POST", "/v2/images/"+id+"/import",
			map[string]any{"method": map[string]any{"name": "web-download", "uri": uri}})
	}
	for _, path := range []string{"/disk.img", "/moved"} {
		id := e.create("member-a", map[string]any{"name": "web", "disk_format": "raw", "container_format": "bare"})
		if r := imp(id, web.URL+path); r.status != 202 {
			t.Fatalf("web-download %s: %d %s", path, r.status, r.body)
		}
		e.waitStatus(id, "active")
		if r := e.do("member-a", "GET", "/v2/images/"+id+"/file", nil); !bytes.Equal(r.body, data) {
			t.Fatalf("web-download %s: data differs", path)
		}
	}
	// Failures put the image back to queued.
	for _, path := range []string{"/missing", "/to-ftp"} {
		id := e.create("member-a", map[string]any{"name": "web", "disk_format": "raw", "container_format": "bare"})
		if r := imp(id, web.URL+path); r.status != 202 {
			t.Fatalf("web-download %s: %d %s", path, r.status, r.body)
		}
		if img := e.waitStatus(id, "queued"); img["size"] != nil {
			t.Fatalf("failed web-download %s: %v", path, img)
		}
	}
	// Data that is not what disk_format says is refused the same way.
	id := e.create("member-a", map[string]any{"name": "web", "disk_format": "qcow2", "container_format": "bare"})
	imp(id, web.URL+"/disk.img")
	e.waitStatus(id, "queued")
	// Refused at once.
	noFormat := e.create("member-a", map[string]any{"name": "nf"})
	for _, c := range []struct {
		id, uri string
		want    int
	}{
		{id, "ftp://example.com/x", 400},
		{id, "file:///etc/passwd", 400},
		{id, "http://user:pw@example.com/x", 400},
		{id, "", 400},
		{noFormat, web.URL + "/disk.img", 409},
		{"0b7e5b21-3c34-4bb8-a1f0-5d9f1f3b2c11", web.URL + "/disk.img", 404},
	} {
		if r := imp(c.id, c.uri); r.status != c.want {
			t.Errorf("web-download %q: %d, want %d: %s", c.uri, r.status, c.want, r.body)
		}
	}
	// Glance's default filter allows ports 80 and 443 only.
	strict := httptest.NewServer(imageapi.New(e.cat, nil, imageapi.Options{}))
	defer strict.Close()
	e.srv = strict
	if r := imp(id, web.URL+"/disk.img"); r.status != 400 {
		t.Fatalf("web-download to port %s with the default filter: %d", web.URL, r.status)
	}
	if got := catalog.DefaultWebDownloader.Check(ctx, "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"); got != nil {
		t.Fatalf("default filter refuses a plain https URL: %v", got)
	}
}

// TestNoAuth: with --auth none every caller is an admin without a project, as Glance noauth:
// images are made without an owner and anyone may use them.
func TestNoAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srv = httptest.NewServer(imageapi.New(e.cat, nil, imageapi.Options{}))
	defer e.srv.Close()
	r := e.do("", "POST", "/v2/images", map[string]any{"name": "open", "disk_format": "raw", "container_format": "bare"}, "X-Auth-Token", "notused")
	if r.status != 201 || r.json(t)["owner"] != nil {
		t.Fatalf("noauth create: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	e.upload("", id, rawImage(100))
	if got := names(t, e.do("", "GET", "/v2/images", nil)); len(got) != 1 {
		t.Fatalf("noauth list: %v", got)
	}
	if r := e.do("", "DELETE", "/v2/images/"+id, nil); r.status != 204 {
		t.Fatalf("noauth delete: %d", r.status)
	}
}

// TestWebDownloadInternalAddresses: through the Image API, web-download refuses internal
// addresses with Glance's 400 at once (directly, by a name resolving to loopback, the
// metadata address); an operator-allowed origin that redirects to an internal server leaves
// the image queued with no data, and the log of the failure carries no credentials; an
// allowed host entry naming the internal server lets the bytes through.
func TestWebDownloadInternalAddresses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	data := rawImage(200000)
	var hits atomic.Int32
	internal := testenv.ServeOn(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(data)
	}))
	origin := testenv.ServeOn(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	}))
	port := strings.TrimPrefix(internal.URL, "http://127.0.0.1:")
	logs := &testenv.SyncBuffer{}
	serve := func(web *catalog.WebDownloader) {
		srv := httptest.NewServer(imageapi.New(e.cat, nil, imageapi.Options{Web: web, Log: slog.New(slog.NewTextHandler(logs, nil))}))
		t.Cleanup(srv.Close)
		e.srv = srv
	}
	imp := func(uri string) (string, resp) {
		id := e.create("member-a", map[string]any{"name": "web", "disk_format": "raw", "container_format": "bare"})
		return id, e.do("member-a", "POST", "/v2/images/"+id+"/import",
			map[string]any{"method": map[string]any{"name": "web-download", "uri": uri}}, "Accept", "application/json")
	}

	serve(&catalog.WebDownloader{}) // any port, nothing internal
	for _, uri := range []string{internal.URL + "/disk", "http://localhost:" + port + "/disk",
		"http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]:" + port + "/disk", origin.URL + "/r"} {
		id, r := imp(uri)
		if r.status != 400 || !strings.Contains(r.json(t)["message"].(string), "URI for web-download does not pass filtering") {
			t.Fatalf("%s: %d %s", uri, r.status, r.body)
		}
		if img := e.show(id); img["status"] != "queued" || img["size"] != nil {
			t.Fatalf("%s: image %v", uri, img)
		}
	}
	if _, r := imp("http://alice:hunter2@example.com/disk"); r.status != 400 || strings.Contains(string(r.body), "hunter2") {
		t.Fatalf("credentials in the URI: %d %s", r.status, r.body)
	}

	// The operator allows the origin; it redirects to the internal server, with credentials.
	serve(&catalog.WebDownloader{AllowedHosts: []string{"127.0.0.2"}})
	target := "http://alice:hunter2@127.0.0.1:" + port + "/disk?token=hunter2"
	id, r := imp(origin.URL + "/r?to=" + url.QueryEscape(target) + "&sig=hunter2")
	if r.status != 202 {
		t.Fatalf("import from the allowed origin: %d %s", r.status, r.body)
	}
	if img := e.waitStatus(id, "queued"); img["size"] != nil || img["checksum"] != nil {
		t.Fatalf("after a refused redirect: %v", img)
	}
	for i := 0; !strings.Contains(logs.String(), "image import failed") && i < 1000; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if out := logs.String(); !strings.Contains(out, "image import failed") || !strings.Contains(out, "does not pass filtering") ||
		strings.Contains(out, "hunter2") || strings.Contains(out, "alice") {
		t.Fatalf("log of the failed import: %s", out)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the internal server was reached %d times", n)
	}

	// Named by the operator, the internal server is reachable.
	serve(&catalog.WebDownloader{AllowedHosts: []string{"127.0.0.0/8"}})
	id, r = imp(origin.URL + "/r?to=" + url.QueryEscape(internal.URL+"/disk"))
	if r.status != 202 {
		t.Fatalf("allowed import: %d %s", r.status, r.body)
	}
	e.waitStatus(id, "active")
	if r := e.do("member-a", "GET", "/v2/images/"+id+"/file", nil); !bytes.Equal(r.body, data) {
		t.Fatal("allowed import: data differs")
	}
}
