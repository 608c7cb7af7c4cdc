package imageapi_test

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/imageapi"
	"github.com/xloud/xloud-image/internal/testenv"
)

// jsonServer points e at an Image API logging JSON into the returned buffer.
func jsonServer(t *testing.T, e *env) *testenv.SyncBuffer {
	logs := &testenv.SyncBuffer{}
	authn := &auth.Authenticator{Passwords: e.ident, Tokens: e.ident}
	srv := httptest.NewServer(imageapi.New(e.cat, authn, imageapi.Options{Log: slog.New(slog.NewJSONHandler(logs, nil))}))
	t.Cleanup(srv.Close)
	e.srv = srv
	return logs
}

// TestImportLogged: an import is logged when it starts and when it finishes, with the image
// and the request id of the import call.
func TestImportLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	logs := jsonServer(t, e)
	id := e.create("member-a", map[string]any{"name": "gd", "disk_format": "raw", "container_format": "bare"})
	if r := e.do("member-a", "PUT", "/v2/images/"+id+"/stage", rawImage(70000), "Content-Type", "application/octet-stream"); r.status != 204 {
		t.Fatalf("stage: %d %s", r.status, r.body)
	}
	r := e.do("member-a", "POST", "/v2/images/"+id+"/import", map[string]any{"method": map[string]any{"name": "glance-direct"}})
	if r.status != 202 {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	e.waitStatus(id, "active")
	reqID := r.header.Get("X-Openstack-Request-Id")
	seen := map[string]bool{}
	for range 1000 { // the finish line follows the status change by a moment
		seen = map[string]bool{}
		for line := range strings.Lines(logs.String()) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line is not JSON: %q", line)
			}
			if rec["image"] == id && rec["request_id"] == reqID && rec["level"] == "INFO" && rec["method"] == "glance-direct" {
				seen[rec["msg"].(string)] = true
			}
		}
		if seen["image import finished"] {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !seen["image import started"] || !seen["image import finished"] {
		t.Fatalf("import lines %v for request %s in:\n%s", seen, reqID, logs.String())
	}
}

// TestRefusalLogged: a refusal is logged as a JSON line at INFO with the reason its body
// gives, the image id and the request id the response carries.
func TestRefusalLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create("member-a", map[string]any{"name": "x", "disk_format": "raw", "container_format": "bare"})
	logs := jsonServer(t, e)
	r := e.do("reader-a", "DELETE", "/v2/images/"+id, nil, "Accept", "application/json")
	if r.status != 403 {
		t.Fatalf("reader deletes: %d %s", r.status, r.body)
	}
	reason := strings.TrimSuffix(r.json(t)["message"].(string), "<br /><br />\n\n\n")
	reqID := r.header.Get("X-Openstack-Request-Id")
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == "image api refused" {
			if rec["level"] != "INFO" || rec["image"] != id || rec["request_id"] != reqID || reqID == "" ||
				!strings.EqualFold(rec["reason"].(string), reason) || rec["status"] != 403.0 {
				t.Fatalf("refusal line %v; want image %s, request %s, reason %q", rec, id, reqID, reason)
			}
			return
		}
	}
	t.Fatalf("no refusal logged: %s", logs.String())
}
