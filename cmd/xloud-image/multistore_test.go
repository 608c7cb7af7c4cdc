package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestMultiStoreReadFallback runs the binary with an S3 store (the default) and a file
// store: an image uploaded to S3 and copied to the file store with copy-image stays
// readable through both doors (a registry blob GET and an Image API download) while the S3
// server is down, and a registry push, which goes to the default store, fails cleanly.
func TestMultiStoreReadFallback(t *testing.T) {
	s3 := testenv.StartS3(t)
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{
		"--store", "remote=" + s3.URL(s3.Bucket("xloud"), "blobs"),
		"--store", "local=file://" + filepath.Join(t.TempDir(), "local"), "--default-store", "remote"}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.Log())
		}
	})
	api := "http://" + srv.APIAddr
	call := func(method, url string, body []byte, hdr ...string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	show := func(id string) map[string]any {
		t.Helper()
		_, b := call("GET", api+"/v2/images/"+id, nil)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("show: %s", b)
		}
		return m
	}
	st, b := call("POST", api+"/v2/images", []byte(`{"name":"fallback","disk_format":"raw","container_format":"bare"}`),
		"Content-Type", "application/json")
	if st != http.StatusCreated {
		t.Fatalf("create: %d %s", st, b)
	}
	var img struct{ ID string }
	json.Unmarshal(b, &img)
	data := randomBytes(2 << 20)
	if st, b := call("PUT", api+"/v2/images/"+img.ID+"/file", data, "Content-Type", "application/octet-stream"); st != http.StatusNoContent {
		t.Fatalf("upload: %d %s", st, b)
	}
	if st, b := call("POST", api+"/v2/images/"+img.ID+"/import", []byte(`{"method":{"name":"copy-image"},"stores":["local"]}`),
		"Content-Type", "application/json"); st != http.StatusAccepted {
		t.Fatalf("copy-image: %d %s", st, b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for show(img.ID)["stores"] != "local,remote" {
		if time.Now().After(deadline) {
			t.Fatalf("copy-image does not finish: %v", show(img.ID))
		}
		time.Sleep(100 * time.Millisecond)
	}
	ref := show(img.ID)["xloud_oci_reference"].(string) // HOST:PORT/REPO:ID
	ref = ref[strings.Index(ref, "/")+1:]
	repo := ref[:strings.LastIndex(ref, ":")]
	sum := sha256.Sum256(data)
	blob := srv.URL() + "/v2/" + repo + "/blobs/sha256:" + hex.EncodeToString(sum[:])

	s3.Stop()
	if st, b := call("GET", blob, nil); st != http.StatusOK || !bytes.Equal(b, data) {
		t.Fatalf("registry blob GET with S3 down: %d, %d bytes", st, len(b))
	}
	if st, b := call("GET", api+"/v2/images/"+img.ID+"/file", nil); st != http.StatusOK || !bytes.Equal(b, data) {
		t.Fatalf("download with S3 down: %d, %d bytes", st, len(b))
	}
	// Pushes go to the default store, which is down: the spec's error, nothing stored.
	push := randomBytes(1024)
	d := sha256.Sum256(push)
	st, b = call("POST", srv.URL()+"/v2/p/pushed/blobs/uploads/?digest=sha256:"+hex.EncodeToString(d[:]), push,
		"Content-Type", "application/octet-stream")
	if st != http.StatusServiceUnavailable || errorCode(t, b) != "UNAVAILABLE" {
		t.Fatalf("push with the default store down: %d %s", st, b)
	}
	s3.Restart()
	if st, b = call("POST", srv.URL()+"/v2/p/pushed/blobs/uploads/?digest=sha256:"+hex.EncodeToString(d[:]), push,
		"Content-Type", "application/octet-stream"); st != http.StatusCreated {
		t.Fatalf("push after S3 is back: %d %s", st, b)
	}
}
