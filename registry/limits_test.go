package registry

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestManifestBudgetFull: while one push holds the budget of manifest bytes, another that
// does not fit waits, then is TOOMANYREQUESTS (429, Retry-After); once the first is done,
// pushes go through again. A declared length over the limit is refused before reading.
func TestManifestBudgetFull(t *testing.T) {
	tr := newTestRegistry(t, Options{ManifestBudget: 4096, ManifestWait: 100 * time.Millisecond, MaxManifestSize: 3000})
	// The first push asks for 100-continue: the server answers it only once the handler
	// reads the body, that is once it holds its share (2 × 2000 bytes).
	conn, err := net.Dial("tcp", strings.TrimPrefix(tr.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /v2/b/r/manifests/one HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"+
		"Content-Length: 2000\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("first push: %q %v, want 100 Continue", line, err)
	}
	br.ReadString('\n') // the blank line ending the interim response

	resp, body := tr.do("PUT", "/v2/b/r/manifests/two", []byte(strings.Repeat("{", 100)), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	tr.expect(resp, body, http.StatusTooManyRequests, CodeTooManyRequests)
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}

	conn.Write([]byte(strings.Repeat(" ", 2000))) // not JSON: MANIFEST_INVALID
	first, err := http.ReadResponse(br, nil)
	if err != nil || first.StatusCode != http.StatusBadRequest {
		t.Fatalf("first push: %v %v, want 400", first, err)
	}
	resp, body = tr.do("PUT", "/v2/b/r/manifests/three", []byte(strings.Repeat("{", 100)), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	tr.expect(resp, body, http.StatusBadRequest, CodeManifestInvalid)

	resp, body = tr.do("PUT", "/v2/b/r/manifests/big", []byte(strings.Repeat(" ", 3001)), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	tr.expect(resp, body, http.StatusRequestEntityTooLarge, CodeSizeInvalid)
}

// TestByteBudgetWaiters: waiters are served in order; one that gives up lets those behind
// it through.
func TestByteBudgetWaiters(t *testing.T) {
	b := newByteBudget(100)
	first, _ := b.acquire(context.Background(), 60)
	ctx, cancel := context.WithCancel(context.Background())
	bigErr := make(chan error)
	go func() { _, err := b.acquire(ctx, 80); bigErr <- err }()
	small := make(chan int64)
	go func() {
		for { // queue behind the big one
			b.mu.Lock()
			n := b.waiters.Len()
			b.mu.Unlock()
			if n == 1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		n, _ := b.acquire(context.Background(), 30)
		small <- n
	}()
	for {
		b.mu.Lock()
		n := b.waiters.Len()
		b.mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel() // the head gives up: the small one fits beside the first
	if err := <-bigErr; err == nil {
		t.Fatal("a cancelled wait succeeded")
	}
	if n := <-small; n != 30 {
		t.Fatalf("small waiter got %d", n)
	}
	b.release(first)
	b.release(30)
	if b.used != 0 || b.waiters.Len() != 0 {
		t.Fatalf("budget left used %d, %d waiters", b.used, b.waiters.Len())
	}
}

// TestErrorBodiesBounded: an error that echoes input is cut short, and a list of missing
// blobs names the first hundred and says how many there are.
func TestErrorBodiesBounded(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	m := `{"schemaVersion":2,"mediaType":"` + strings.Repeat("x", 200<<10) + `"}`
	resp, body := tr.do("PUT", "/v2/e/r/manifests/t", []byte(m), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	tr.expect(resp, body, http.StatusBadRequest, CodeManifestInvalid)
	if len(body) > 2048 {
		t.Fatalf("error body of %d bytes", len(body))
	}

	var layers []map[string]any
	for i := range 500 {
		layers = append(layers, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar",
			"digest": digest.FromString(fmt.Sprint(i)), "size": 1})
	}
	mb, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromString("c"), "size": 1},
		"layers": layers})
	resp, body = tr.do("PUT", "/v2/e/r/manifests/t", mb, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	tr.expect(resp, body, http.StatusBadRequest, CodeManifestBlobUnknown)
	var e struct {
		Errors []struct {
			Detail struct {
				Digests []string
				Count   int
			}
		}
	}
	json.Unmarshal(body, &e)
	if d := e.Errors[0].Detail; len(d.Digests) != 100 || d.Count != 501 {
		t.Fatalf("detail lists %d digests, count %d; want 100 of 501", len(d.Digests), d.Count)
	}
}

// TestUploadSessionCap: past the project's cap, starting an upload is TOOMANYREQUESTS;
// another project still starts; cancelling one makes room.
func TestUploadSessionCap(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	tr.store.UploadLimit = 2
	var locs []string
	for range 2 {
		resp, body := tr.do("POST", "/v2/team/app/blobs/uploads/", nil)
		tr.expect(resp, body, http.StatusAccepted, "")
		locs = append(locs, resp.Header.Get("Location"))
	}
	resp, body := tr.do("POST", "/v2/team/other/blobs/uploads/", nil)
	tr.expect(resp, body, http.StatusTooManyRequests, CodeTooManyRequests)
	resp, body = tr.do("POST", "/v2/team/app/blobs/uploads/?digest="+digest.FromString("x").String(), []byte("x"))
	tr.expect(resp, body, http.StatusTooManyRequests, CodeTooManyRequests)
	resp, body = tr.do("POST", "/v2/elsewhere/app/blobs/uploads/", nil)
	tr.expect(resp, body, http.StatusAccepted, "")
	resp, body = tr.do("DELETE", locs[0], nil)
	tr.expect(resp, body, http.StatusNoContent, "")
	resp, body = tr.do("POST", "/v2/team/app/blobs/uploads/", nil)
	tr.expect(resp, body, http.StatusAccepted, "")
}

// TestExpiredUploadUnknown: a session the janitor expired answers BLOB_UPLOAD_UNKNOWN.
func TestExpiredUploadUnknown(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	now := time.Unix(1_800_000_000, 0)
	tr.store.Now = func() time.Time { return now }
	resp, body := tr.do("POST", "/v2/x/r/blobs/uploads/", nil)
	tr.expect(resp, body, http.StatusAccepted, "")
	loc := resp.Header.Get("Location")
	resp, body = tr.do("PATCH", loc, []byte("abc"), "Content-Type", "application/octet-stream")
	tr.expect(resp, body, http.StatusAccepted, "")
	now = now.Add(2 * time.Hour)
	if _, err := tr.store.ExpireUploads(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	resp, body = tr.do("PATCH", loc, []byte("def"), "Content-Type", "application/octet-stream")
	tr.expect(resp, body, http.StatusNotFound, CodeBlobUploadUnknown)
	resp, body = tr.do("GET", loc, nil)
	tr.expect(resp, body, http.StatusNotFound, CodeBlobUploadUnknown)
}
