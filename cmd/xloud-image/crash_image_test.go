package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestImageWritesInterruptedByCrash kills the server while an image upload and a stage are
// streaming in, restarts it on the same (embedded) store, and checks that both images are
// back in queued with no data — a failed upload, as Glance leaves it — and take new data.
func TestImageWritesInterruptedByCrash(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{})
	c := &client{t: t}
	call := func(method, path string, body io.Reader, contentType string) (*http.Response, []byte, error) {
		c.base = "http://" + srv.APIAddr
		if contentType == "" {
			return c.do(method, path, body)
		}
		return c.do(method, path, body, "Content-Type", contentType)
	}
	image := func(id string) map[string]any {
		t.Helper()
		resp, b, err := call("GET", "/v2/images/"+id, nil, "")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET image %s: %v %v %s", id, resp, err, b)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		return m
	}
	create := func(name string) string {
		t.Helper()
		resp, b, err := call("POST", "/v2/images", strings.NewReader(`{"name":"`+name+`","disk_format":"raw","container_format":"bare"}`), "application/json")
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("create: %v %v %s", resp, err, b)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		return m["id"].(string)
	}
	const size = 64 << 20
	data := bytes.Repeat([]byte("disk"), size/4)
	uploaded, staged := create("uploaded"), create("staged")
	for _, w := range []struct{ id, path, status string }{
		{uploaded, "/file", "saving"},
		{staged, "/stage", "uploading"},
	} {
		go call("PUT", "/v2/images/"+w.id+w.path, slowReader{bytes.NewReader(data), 20 * time.Millisecond}, "application/octet-stream")
		for i := 0; image(w.id)["status"] != w.status; i++ {
			if i == 400 {
				t.Fatalf("image %s never became %s", w.id, w.status)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	srv.Kill()
	srv.Start()
	for _, id := range []string{uploaded, staged} {
		img := image(id)
		if img["status"] != "queued" || img["size"] != nil || img["checksum"] != nil {
			t.Fatalf("after the restart: status %v size %v checksum %v, want queued with no data\nlog:\n%s",
				img["status"], img["size"], img["checksum"], srv.Log())
		}
	}
	if !strings.Contains(srv.Log(), "returned to queued") {
		t.Errorf("the recovery is not logged:\n%s", srv.Log())
	}
	resp, b, err := call("PUT", "/v2/images/"+uploaded+"/file", bytes.NewReader(data), "application/octet-stream")
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("upload after the restart: %v %v %s", resp, err, b)
	}
	if img := image(uploaded); img["status"] != "active" || img["size"] != float64(size) {
		t.Fatalf("after the new upload: %v", img)
	}
}
