package registry

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/internal/testenv"
)

// logLines parses every line of logs as JSON.
func logLines(t *testing.T, logs string) []map[string]any { return testenv.JSONLines(t, logs) }

// TestRefusalsExplainAndLog: a signed-in caller lacking a role is DENIED with what it lacks
// (role and project), and the refusal is logged at INFO with the request id the response
// carries; an anonymous caller's challenge is logged at DEBUG only.
func TestRefusalsExplainAndLog(t *testing.T) {
	s := newSecured(t)
	s.seed()
	var logs syncBuf
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)

	cases := []struct{ user, method, path, want string }{
		{"reader-a", "POST", "/v2/a/app/blobs/uploads/", "push on a/app needs the member role (or manager, admin) on project a"},
		{"member-b", "GET", "/v2/a/app/manifests/v1", "pull on a/app needs the reader role (or member, manager, admin) on project a"},
	}
	for _, c := range cases {
		resp, body := s.do(c.method, c.path, nil, s.as(c.user)...)
		s.expect(resp, body, 403, CodeDenied)
		if !strings.Contains(string(body), c.want) || !strings.Contains(string(body), c.user) {
			t.Errorf("%s %s: body %s, want %q", c.user, c.path, body, c.want)
		}
		id := resp.Header.Get("X-Request-Id")
		found := false
		for _, rec := range logLines(t, logs.String()) {
			if rec["request_id"] == id && rec["msg"] == "registry refused" {
				found = rec["level"] == "INFO" && strings.Contains(rec["reason"].(string), c.want) && rec["code"] == "DENIED"
			}
		}
		if id == "" || !found {
			t.Errorf("%s %s: no INFO refusal with request id %q in %s", c.user, c.path, id, logs.String())
		}
	}

	before := len(logLines(t, logs.String()))
	resp, body := s.do("GET", "/v2/a/app/manifests/v1", nil)
	s.expect(resp, body, 401, CodeUnauthorized)
	recs := logLines(t, logs.String())[before:]
	if len(recs) != 1 || recs[0]["level"] != "DEBUG" || recs[0]["request_id"] != resp.Header.Get("X-Request-Id") {
		t.Errorf("anonymous challenge logged as %v, want one DEBUG line", recs)
	}
}

// TestPushAndDeleteLogged: a manifest push and a manifest delete are INFO lines naming the
// repository, the digest and the caller.
func TestPushAndDeleteLogged(t *testing.T) {
	s := newSecured(t)
	var logs syncBuf
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&logs, nil)))
	defer slog.SetDefault(prev)
	s.seed() // admin pushes a/app:v1 and b/app:v1
	resp, body := s.do("DELETE", "/v2/b/app/manifests/v1", nil, s.as("admin")...)
	s.expect(resp, body, 202, "")
	var pushed, deleted int
	for _, rec := range logLines(t, logs.String()) {
		switch rec["msg"] {
		case "manifest pushed":
			if rec["level"] != "INFO" || rec["user"] != "admin" || !strings.HasPrefix(rec["digest"].(string), "sha256:") ||
				rec["request_id"] == "" || (rec["repository"] != "a/app" && rec["repository"] != "b/app") {
				t.Errorf("push line %v", rec)
			}
			pushed++
		case "manifest deleted":
			if rec["repository"] != "b/app" || rec["reference"] != "v1" || rec["user"] != "admin" {
				t.Errorf("delete line %v", rec)
			}
			deleted++
		}
	}
	if pushed != 2 || deleted != 1 {
		t.Errorf("%d pushes and %d deletes logged, want 2 and 1:\n%s", pushed, deleted, logs.String())
	}
}
