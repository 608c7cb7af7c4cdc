package imageapi_test

import (
	"bytes"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// newMultiEnv is an Image API over two file stores, fast (the default) and cheap, as a
// server run with --store fast=… --store cheap=….
func newMultiEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	var named []storage.NamedStore
	for _, n := range []string{"fast", "cheap"} {
		f, err := storage.OpenFiles(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		named = append(named, storage.NamedStore{Name: n, Store: f})
	}
	m, err := meta.OpenBolt(filepath.Join(dir, "meta.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	store, err := storage.NewStores(m, named, "fast")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOver(t, store)
	e.cat.MultiStore = true
	return e
}

// wantStatus checks an answer's status and that its Glance error text holds text.
func wantStatus(t *testing.T, what string, r resp, status int, text string) {
	t.Helper()
	if r.status != status || !strings.Contains(string(r.body), text) {
		t.Fatalf("%s: %d %s, want %d with %q", what, r.status, r.body, status, text)
	}
}

func TestStoresInfoWire(t *testing.T) {
	single := newEnv(t)
	wantStatus(t, "stores without --store", single.do("member-a", "GET", "/v2/info/stores", nil), http.StatusNotFound, "")
	wantStatus(t, "detail without --store", single.do("admin", "GET", "/v2/info/stores/detail", nil), http.StatusNotFound, "")

	if r := single.do("", "GET", "/versions", nil); strings.Contains(string(r.body), "v2.10") {
		t.Fatalf("single-store versions list multi-store ones: %s", r.body)
	}
	e := newMultiEnv(t)
	if r := e.do("", "GET", "/versions", nil); !strings.Contains(string(r.body), `"v2.10"`) || !strings.Contains(string(r.body), `"v2.8"`) {
		t.Fatalf("multi-store versions: %s", r.body)
	}
	if r := e.do("admin", "GET", "/v2.10/info/stores", nil); r.status != http.StatusOK {
		t.Fatalf("/v2.10/info/stores: %d %s", r.status, r.body)
	}
	r := e.do("member-a", "GET", "/v2/info/stores", nil)
	if r.status != http.StatusOK {
		t.Fatalf("stores: %d %s", r.status, r.body)
	}
	stores := r.json(t)["stores"].([]any)
	first, second := stores[0].(map[string]any), stores[1].(map[string]any)
	if len(stores) != 2 || first["id"] != "fast" || first["default"] != "true" || second["id"] != "cheap" ||
		second["default"] != nil || first["type"] != nil {
		t.Fatalf("stores: %s", r.body)
	}
	wantStatus(t, "detail as member", e.do("member-a", "GET", "/v2/info/stores/detail", nil), http.StatusForbidden, "stores_info_detail")
	r = e.do("admin", "GET", "/v2/info/stores/detail", nil)
	detail := r.json(t)["stores"].([]any)[0].(map[string]any)
	if r.status != http.StatusOK || detail["type"] != "file" || detail["properties"].(map[string]any)["data_dir"] == nil {
		t.Fatalf("detail: %d %s", r.status, r.body)
	}
	r = e.do("member-a", "GET", "/v2/info/import", nil)
	if !strings.Contains(string(r.body), "copy-image") {
		t.Fatalf("import methods: %s", r.body)
	}
	r = e.do("member-a", "POST", "/v2/images", map[string]any{"name": "h", "disk_format": "raw", "container_format": "bare"})
	if r.header.Get("OpenStack-image-store-ids") != "fast,cheap" || !strings.Contains(r.header.Get("OpenStack-image-import-methods"), "copy-image") {
		t.Fatalf("create headers: %v", r.header)
	}
}

func TestMultiStoreWire(t *testing.T) {
	e := newMultiEnv(t)
	data := bytes.Repeat([]byte("wire "), 20000)
	id := e.create("member-a", map[string]any{"name": "w", "disk_format": "raw", "container_format": "bare"})
	octet := []string{"Content-Type", "application/octet-stream"}

	// Upload and stage to an unknown store: 400 with glance_store's text, nothing changed.
	r := e.do("member-a", "PUT", "/v2/images/"+id+"/file", data, append(octet, "X-Image-Meta-Store", "nowhere")...)
	wantStatus(t, "upload to an unknown store", r, http.StatusBadRequest, "Unknown scheme 'nowhere' found in URI")
	r = e.do("member-a", "PUT", "/v2/images/"+id+"/stage", data, append(octet, "X-Image-Meta-Store", "nowhere")...)
	wantStatus(t, "stage to an unknown store", r, http.StatusBadRequest, "Unknown scheme 'nowhere' found in URI")
	if img := e.show(id); img["status"] != "queued" || img["stores"] != nil {
		t.Fatalf("after refusals: %v", img)
	}
	r = e.do("member-a", "PUT", "/v2/images/"+id+"/file", data, append(octet, "X-Image-Meta-Store", "cheap")...)
	if r.status != http.StatusNoContent {
		t.Fatalf("upload to cheap: %d %s", r.status, r.body)
	}
	if img := e.show(id); img["stores"] != "cheap" {
		t.Fatalf("stores after upload: %v", img["stores"])
	}

	// Malformed and refused copy-image requests.
	imp := "/v2/images/" + id + "/import"
	for _, c := range []struct {
		who    string
		body   string
		status int
		text   string
	}{
		{"admin", `{"method": {"name": "copy-image"}, "stores": "fast"}`, http.StatusBadRequest, "stores"},
		{"admin", `{"method": {"name": "copy-image"}, "all_stores": "yes"}`, http.StatusBadRequest, "all_stores"},
		{"admin", `{"method": {"name": "copy-image"}, "all_stores_must_succeed": 1}`, http.StatusBadRequest, "all_stores_must_succeed"},
		{"admin", `{"method": {"name": "copy-image"}, "stores": ["nowhere"]}`, http.StatusConflict, "Unknown scheme 'nowhere'"},
		{"admin", `{"method": {"name": "copy-image"}, "stores": ["cheap"]}`, http.StatusBadRequest, "already present at store 'cheap'"},
		{"admin", `{"method": {"name": "copy-image"}, "stores": ["fast"], "all_stores": true}`, http.StatusBadRequest, "All_stores parameter"},
		{"member-a", `{"method": {"name": "copy-image"}, "stores": ["fast"]}`, http.StatusForbidden, "not allowed"},
		{"member-b", `{"method": {"name": "copy-image"}, "stores": ["fast"]}`, http.StatusNotFound, ""},
		{"admin", `{"method": {"name": "copy-image"}, "stores": [`, http.StatusBadRequest, ""},
	} {
		r := e.do(c.who, "POST", imp, c.body, "Content-Type", "application/json")
		wantStatus(t, c.body, r, c.status, c.text)
	}
	r = e.do("admin", "POST", imp, `{"method": {"name": "copy-image"}, "all_stores": true, "all_stores_must_succeed": false}`, "Content-Type", "application/json")
	if r.status != http.StatusAccepted {
		t.Fatalf("copy-image: %d %s", r.status, r.body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		img := e.show(id)
		if left, ok := img["os_glance_importing_to_stores"]; ok && left == "" {
			if img["stores"] != "cheap,fast" || img["os_glance_failed_import"] != "" || img["status"] != "active" {
				t.Fatalf("after copy-image: %v", img)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("copy-image does not finish: %v", img)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Per-store delete.
	wantStatus(t, "delete as owner", e.do("member-a", "DELETE", "/v2/stores/cheap/"+id, nil), http.StatusForbidden, "not allowed")
	wantStatus(t, "delete as another project", e.do("member-b", "DELETE", "/v2/stores/cheap/"+id, nil), http.StatusNotFound, "")
	wantStatus(t, "unknown store", e.do("admin", "DELETE", "/v2/stores/nowhere/"+id, nil), http.StatusConflict, "not available on this node")
	wantStatus(t, "unknown image", e.do("admin", "DELETE", "/v2/stores/cheap/00000000-0000-0000-0000-000000000000", nil), http.StatusNotFound, "Failed to find image")
	if r := e.do("admin", "DELETE", "/v2/stores/cheap/"+id, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete from cheap: %d %s", r.status, r.body)
	}
	if img := e.show(id); img["stores"] != "fast" {
		t.Fatalf("stores after delete: %v", img["stores"])
	}
	wantStatus(t, "delete from the last store", e.do("admin", "DELETE", "/v2/stores/fast/"+id, nil), http.StatusConflict, "only store containing it")
	r = e.do("member-a", "GET", "/v2/images/"+id+"/file", nil)
	if r.status != http.StatusOK || !bytes.Equal(r.body, data) {
		t.Fatalf("download after per-store delete: %d, %d bytes", r.status, len(r.body))
	}
}

func TestImportStoresWire(t *testing.T) {
	e := newMultiEnv(t)
	data := bytes.Repeat([]byte("staged "), 30000)
	id := e.create("member-a", map[string]any{"name": "s", "disk_format": "raw", "container_format": "bare"})
	r := e.do("member-a", "PUT", "/v2/images/"+id+"/stage", data, "Content-Type", "application/octet-stream")
	if r.status != http.StatusNoContent {
		t.Fatalf("stage: %d %s", r.status, r.body)
	}
	imp := "/v2/images/" + id + "/import"
	wantStatus(t, "stores and header", e.do("member-a", "POST", imp, `{"method": {"name": "glance-direct"}, "stores": ["cheap"]}`,
		"Content-Type", "application/json", "X-Image-Meta-Store", "fast"), http.StatusBadRequest, "can't be both specified")
	wantStatus(t, "unknown store in header", e.do("member-a", "POST", imp, `{"method": {"name": "glance-direct"}}`,
		"Content-Type", "application/json", "X-Image-Meta-Store", "nowhere"), http.StatusConflict, "Unknown scheme 'nowhere'")
	r = e.do("member-a", "POST", imp, `{"method": {"name": "glance-direct"}, "stores": ["cheap"]}`, "Content-Type", "application/json")
	if r.status != http.StatusAccepted {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	img := e.waitStatus(id, "active")
	if img["stores"] != "cheap" || img["os_glance_importing_to_stores"] != "" || img["os_glance_failed_import"] != "" {
		t.Fatalf("imported: %v", img)
	}
}
