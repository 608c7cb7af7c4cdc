package registry

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage"
)

// testRegistry is a Registry over a real store in a temp dir, served by httptest.
type testRegistry struct {
	t     *testing.T
	srv   *httptest.Server
	store *storage.Store
}

func newTestRegistry(t *testing.T, opt Options) *testRegistry {
	t.Helper()
	store := testenv.OpenStore(t, "")
	srv := httptest.NewServer(New(store, opt))
	t.Cleanup(srv.Close)
	return &testRegistry{t: t, srv: srv, store: store}
}

// do sends a request and returns the response with its body read.
func (tr *testRegistry) do(method, path string, body []byte, header ...string) (*http.Response, []byte) {
	tr.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, tr.url(path), rd)
	if err != nil {
		tr.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tr.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (tr *testRegistry) url(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return tr.srv.URL + path
}

// expect checks the status and, for errors, the spec error code in the body.
func (tr *testRegistry) expect(resp *http.Response, body []byte, status int, code Code) {
	tr.t.Helper()
	if resp.StatusCode != status {
		tr.t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, body)
	}
	if code == "" {
		return
	}
	var e struct {
		Errors []struct{ Code Code } `json:"errors"`
	}
	if resp.Request.Method == http.MethodHead {
		return
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code != code {
		tr.t.Fatalf("%s %s: body %s, want error code %s", resp.Request.Method, resp.Request.URL.Path, body, code)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		tr.t.Fatalf("error Content-Type %q", ct)
	}
}

// pushBlob uploads content monolithically (POST + PUT) and returns its digest.
func (tr *testRegistry) pushBlob(repo string, content []byte) digest.Digest {
	tr.t.Helper()
	d := digest.FromBytes(content)
	resp, body := tr.do("POST", "/v2/"+repo+"/blobs/uploads/", nil)
	tr.expect(resp, body, http.StatusAccepted, "")
	loc := resp.Header.Get("Location")
	resp, body = tr.do("PUT", loc+"?digest="+d.String(), content, "Content-Type", "application/octet-stream")
	tr.expect(resp, body, http.StatusCreated, "")
	return d
}

// pushImage pushes a config, one layer and a manifest tagged tag; it returns the manifest
// digest and bytes.
func (tr *testRegistry) pushImage(repo, tag string, layer []byte, extra map[string]any) (digest.Digest, []byte) {
	tr.t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cd := tr.pushBlob(repo, cfg)
	ld := tr.pushBlob(repo, layer)
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}},
	}
	for k, v := range extra {
		m[k] = v
	}
	mb, _ := json.Marshal(m)
	resp, body := tr.do("PUT", "/v2/"+repo+"/manifests/"+tag, mb, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	tr.expect(resp, body, http.StatusCreated, "")
	return digest.FromBytes(mb), mb
}
