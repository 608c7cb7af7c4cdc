package imageapi_test

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/imageapi"
	"github.com/xloud/xloud-image/internal/testenv"
)

// TestRefusalLogged: a refusal is logged as a JSON line at INFO with the reason its body
// gives, the image id and the request id the response carries.
func TestRefusalLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create("member-a", map[string]any{"name": "x", "disk_format": "raw", "container_format": "bare"})
	logs := &testenv.SyncBuffer{}
	authn := &auth.Authenticator{Passwords: e.ident, Tokens: e.ident}
	srv := httptest.NewServer(imageapi.New(e.cat, authn, imageapi.Options{Log: slog.New(slog.NewJSONHandler(logs, nil))}))
	t.Cleanup(srv.Close)
	e.srv = srv
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
