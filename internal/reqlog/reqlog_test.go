package reqlog_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/internal/reqlog"
	"github.com/xloud/xloud-image/internal/testenv"
)

func records(t *testing.T, logs string) []map[string]any { return testenv.JSONLines(t, logs) }

// TestMiddleware: a request gets an id (header and context), a line logged inside it with
// its context names the id once, and its access line has the status, the bytes sent (through
// ReadFrom too) and the caller a handler recorded.
func TestMiddleware(t *testing.T) {
	logs := &testenv.SyncBuffer{}
	log := slog.New(reqlog.Handler{Handler: slog.NewJSONHandler(logs, nil)})
	h := reqlog.Middleware("api", true, log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqlog.SetCaller(r.Context(), "alice", "p1")
		log.InfoContext(r.Context(), "inside")
		log.InfoContext(r.Context(), "named", "request_id", reqlog.ID(r.Context()))
		w.WriteHeader(http.StatusTeapot)
		io.Copy(w, strings.NewReader("0123456789")) // ReadFrom on the writer
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get(reqlog.Header)
	srv.Close() // the handler, and its access line, are done
	recs := records(t, logs.String())
	if len(recs) != 3 {
		t.Fatalf("want 3 lines: %s", logs.String())
	}
	for _, rec := range recs[:2] {
		if rec["request_id"] != id || id == "" {
			t.Errorf("line %v, want request id %s", rec, id)
		}
	}
	if n := strings.Count(logs.String(), `"request_id"`); n != 3 {
		t.Errorf("request_id appears %d times in 3 lines: %s", n, logs.String())
	}
	acc := recs[2]
	if acc["msg"] != "access" || acc["status"] != 418.0 || acc["bytes"] != 10.0 || acc["user"] != "alice" ||
		acc["project"] != "p1" || acc["path"] != "/x" || acc["listener"] != "api" || acc["request_id"] != id {
		t.Errorf("access line %v", acc)
	}
}

// TestRedisLogsJSON: go-redis's own lines (printf-style, newline-ended) come out of the
// adapter serve installs with redis.SetLogger as JSON.
func TestRedisLogsJSON(t *testing.T) {
	var buf bytes.Buffer
	reqlog.Logf{Log: slog.New(slog.NewJSONHandler(&buf, nil))}.Printf(context.Background(), "redis: %s:%d: dial failed\n", "127.0.0.1", 1)
	recs := records(t, buf.String())
	if len(recs) != 1 || recs[0]["msg"] != "redis: 127.0.0.1:1: dial failed" || recs[0]["component"] != "redis" {
		t.Errorf("redis line %v", recs)
	}
}
