package main

import (
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// logRecords parses the server's stderr: every line must be JSON.
func logRecords(t *testing.T, srv *testenv.Server) []map[string]any {
	return testenv.JSONLines(t, srv.Log())
}

// accessLine waits for the access line of request id (it is written as the answer ends).
func accessLine(t *testing.T, srv *testenv.Server, id string) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, rec := range logRecords(t, srv) {
			if rec["msg"] == "access" && rec["request_id"] == id {
				return rec
			}
		}
	}
	t.Fatalf("no access line for %s in:\n%s", id, srv.Log())
	return nil
}

// TestAccessLog: each request on either listener is one JSON access line with its request
// id (the one the response carries), status, bytes and caller; --access-log=false turns the
// lines off but not the request ids.
func TestAccessLog(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "admin-secret"}})
	c := &client{t: t, base: "http://" + srv.RegistryAddr}
	resp, body, err := c.do("GET", "/v2/", nil, "Authorization", "Basic YWRtaW46YWRtaW4tc2VjcmV0") // admin:admin-secret
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v2/: %v %v %s", resp, err, body)
	}
	rec := accessLine(t, srv, resp.Header.Get("X-Request-Id"))
	if rec["level"] != "INFO" || rec["listener"] != "registry" || rec["method"] != "GET" || rec["path"] != "/v2/" ||
		rec["status"] != 200.0 || rec["bytes"] != float64(len(body)) || rec["user"] != "admin" || rec["duration_ms"] == nil {
		t.Errorf("registry access line %v", rec)
	}

	c.base = "http://" + srv.APIAddr
	resp, body, err = c.do("GET", "/v2/images/00000000-0000-0000-0000-000000000000", nil)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("image show without a token: %v %v %s", resp, err, body)
	}
	id := resp.Header.Get("X-Openstack-Request-Id")
	if id == "" || resp.Header.Get("X-Request-Id") != id {
		t.Errorf("request ids %q and %q differ", id, resp.Header.Get("X-Request-Id"))
	}
	rec = accessLine(t, srv, id)
	if rec["listener"] != "api" || rec["status"] != 401.0 || rec["bytes"] != float64(len(body)) || rec["user"] != "" {
		t.Errorf("api access line %v", rec)
	}

	quiet := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--access-log=false"}})
	c.base = "http://" + quiet.RegistryAddr
	resp, _, err = c.do("GET", "/v2/", nil)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("GET /v2/ with --access-log=false: %v %v", resp, err)
	}
	quiet.Stop() // every line it would write is written
	for _, rec := range logRecords(t, quiet) {
		if rec["msg"] == "access" {
			t.Errorf("access line with --access-log=false: %v", rec)
		}
	}
}
