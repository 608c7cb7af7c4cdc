package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// peakRSS reads the high-water mark of a process's resident memory (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// hugeManifest is an image manifest of about size bytes, most of it one annotation: it
// parses, and its blobs are not in the registry.
func hugeManifest(size int) []byte {
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json",
			"digest": "sha256:" + strings.Repeat("a", 64), "size": 2},
		"layers":      []any{},
		"annotations": map[string]string{"filler": strings.Repeat("x", size)},
	}
	b, _ := json.Marshal(m)
	return b
}

// ociErrorCode is the first error code of an OCI error body, or "".
func ociErrorCode(body []byte) string {
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// TestManifestFloodBoundedMemory: many concurrent ~30 MiB manifest pushes hold at most the
// manifest budget (64 MiB) of bodies in memory, so the server's peak RSS stays far below
// what they would take at once (8 × 30 MiB, twice over while parsed); every push gets an OCI answer:
// MANIFEST_BLOB_UNKNOWN once parsed, or TOOMANYREQUESTS when the budget stays taken.
func TestManifestFloodBoundedMemory(t *testing.T) {
	const clients = 8
	const bound = 320 << 20 // one push at a time, with GC headroom; ~1 GiB without the budget
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--manifest-budget", strconv.Itoa(64 << 20)}})
	body := hugeManifest(30 << 20)
	// Clients wait for 100 Continue before sending, as curl does for large bodies, so a
	// refused push is answered rather than cut off mid-body.
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 10 * time.Minute}}
	codes := make([]string, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/v2/flood/m%d/manifests/latest", srv.URL(), i), bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			req.Header.Set("Expect", "100-continue")
			resp, err := client.Do(req)
			if err != nil {
				codes[i] = "transport error: " + err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			codes[i] = fmt.Sprintf("%d %s", resp.StatusCode, ociErrorCode(b))
		})
	}
	wg.Wait()
	answered := map[string]int{}
	for _, c := range codes {
		answered[c]++
		if c != "400 MANIFEST_BLOB_UNKNOWN" && c != "429 TOOMANYREQUESTS" {
			t.Errorf("a push was answered %q", c)
		}
	}
	rss := peakRSS(t, srv.PID())
	t.Logf("answers %v; peak RSS %d MiB", answered, rss>>20)
	if rss > bound {
		t.Fatalf("peak RSS %d MiB, want under %d MiB", rss>>20, bound>>20)
	}
}

// rawRequest opens a connection to addr and sends a request's head and the first part of
// a body of length total, then stalls.
func rawRequest(t *testing.T, addr, head string, part []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(part); err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitClosed reads conn until the server closes it. The deadline only guards against a
// hang (the failure this test looks for); it is not what the test measures.
func waitClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	_, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a stalled request's connection open")
	}
}

// TestStalledBodyDropped: a request body that stops arriving is dropped after
// --body-idle-timeout, on both listeners: the connection is closed, nothing of the partial
// body is committed, and other requests are answered meanwhile.
func TestStalledBodyDropped(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--body-idle-timeout", "300ms"}})
	resp, err := http.Post(srv.URL()+"/v2/stall/r/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("start upload: %d %q", resp.StatusCode, loc)
	}
	regConn := rawRequest(t, srv.RegistryAddr, fmt.Sprintf("PATCH %s HTTP/1.1\r\nHost: x\r\n"+
		"Content-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n", loc), bytes.Repeat([]byte("a"), 1000))

	imageID := createImage(t, srv.APIAddr)
	apiConn := rawRequest(t, srv.APIAddr, fmt.Sprintf("PUT /v2/images/%s/file HTTP/1.1\r\nHost: x\r\n"+
		"Content-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n", imageID), bytes.Repeat([]byte("b"), 1000))

	// Both stalled requests are open; the server keeps answering others.
	for _, u := range []string{srv.URL() + "/v2/", "http://" + srv.APIAddr + "/v2/images"} {
		r, err := http.Get(u)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("GET %s while bodies stall: %v %v", u, r, err)
		}
		r.Body.Close()
	}
	waitClosed(t, regConn)
	waitClosed(t, apiConn)

	r, err := http.Get(srv.URL() + loc)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusNoContent || r.Header.Get("Range") != "0-0" {
		t.Fatalf("upload after the stalled chunk: %d Range %q, want 204 0-0", r.StatusCode, r.Header.Get("Range"))
	}
	if st := imageStatus(t, srv.APIAddr, imageID); st != "queued" {
		t.Fatalf("image after the stalled upload is %q, want queued", st)
	}
}

// createImage creates an image record on the Image API (with --auth none) and returns its id.
func createImage(t *testing.T, apiAddr string) string {
	t.Helper()
	resp, err := http.Post("http://"+apiAddr+"/v2/images", "application/json",
		strings.NewReader(`{"name":"stall","disk_format":"raw","container_format":"bare"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var img struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&img); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create image: %d %v", resp.StatusCode, err)
	}
	return img.ID
}

func imageStatus(t *testing.T, apiAddr, id string) string {
	t.Helper()
	resp, err := http.Get("http://" + apiAddr + "/v2/images/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var img struct{ Status string }
	json.NewDecoder(resp.Body).Decode(&img)
	return img.Status
}

// TestLimitsFromConfigFile: the limits are settings of the one config surface (here the
// YAML file): a project's second open upload is TOOMANYREQUESTS, and a user who failed
// twice is locked out, the right password included, on both ports. Bad values stop the
// start.
func TestLimitsFromConfigFile(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte("upload-limit: 1\nlockout-failure-attempts: 2\nlockout-duration: 1h\n"), 0o600)
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "pw", "--config", cfg}})
	do := func(method, url, pw string) (int, string) {
		req, _ := http.NewRequest(method, url, nil)
		req.SetBasicAuth("admin", pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, ociErrorCode(b)
	}
	if st, _ := do("POST", srv.URL()+"/v2/admin/a/blobs/uploads/", "pw"); st != http.StatusAccepted {
		t.Fatalf("first upload: %d", st)
	}
	if st, code := do("POST", srv.URL()+"/v2/admin/b/blobs/uploads/", "pw"); st != http.StatusTooManyRequests || code != "TOOMANYREQUESTS" {
		t.Fatalf("second upload of the project: %d %s", st, code)
	}
	for range 2 {
		do("GET", srv.URL()+"/v2/", "wrong")
	}
	if st, code := do("GET", srv.URL()+"/v2/", "pw"); st != http.StatusUnauthorized || code != "UNAUTHORIZED" {
		t.Fatalf("locked out on the registry: %d %s", st, code)
	}
	body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"pw"}}}}}`
	resp, err := http.Post("http://"+srv.APIAddr+"/identity/v3/auth/tokens", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("locked out on the identity API: %d", resp.StatusCode)
	}

	for _, bad := range []string{"--upload-limit=-1", "--manifest-budget=-5", "--lockout-duration=0"} {
		out, err := exec.Command(testenv.Binary(t), "serve", "--data-dir", t.TempDir(), bad).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "limit") && !strings.Contains(string(out), "lockout") {
			t.Errorf("serve %s: %v %s", bad, err, out)
		}
	}
}
