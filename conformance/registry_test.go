package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The helpers below speak the Registry API directly: they build test content that no client
// makes on its own (a containerDisk image) and check, independently of the client under test,
// what the server holds.

// pushBlob uploads data to repo with POST + monolithic PUT and returns its digest.
func pushBlob(t *testing.T, base, repo string, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	resp := do(t, "POST", base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload %s: %s", repo, resp.Status)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("POST upload %s: Location: %v", repo, err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	resp = do(t, "PUT", loc.String(), "application/octet-stream", data)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT upload %s %s: %s", repo, d, resp.Status)
	}
	return d
}

// pushManifest PUTs a manifest under ref (tag or digest) and returns its digest, checking
// 201 and Docker-Content-Digest.
func pushManifest(t *testing.T, base, repo, ref, mediaType string, body []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(body)
	resp := do(t, "PUT", base+"/v2/"+repo+"/manifests/"+ref, mediaType, body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT manifest %s:%s: %s", repo, ref, resp.Status)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
		t.Fatalf("PUT manifest %s:%s: Docker-Content-Digest %q, want %s", repo, ref, got, d)
	}
	return d
}

// getManifest fetches a manifest accepting every OCI and Docker type; it returns the status,
// body and Content-Type.
func getManifest(t *testing.T, base, repo, ref string) (int, []byte, string) {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range []string{ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
		"application/vnd.docker.distribution.manifest.v2+json",
		"application/vnd.docker.distribution.manifest.list.v2+json"} {
		req.Header.Add("Accept", mt)
	}
	resp, body := roundTrip(t, req)
	return resp.StatusCode, body, resp.Header.Get("Content-Type")
}

// requireManifestGone checks that repo:ref answers 404 MANIFEST_UNKNOWN, on GET and HEAD.
func requireManifestGone(t *testing.T, base, repo, ref string) {
	t.Helper()
	status, body, _ := getManifest(t, base, repo, ref)
	if status != http.StatusNotFound || !bytes.Contains(body, []byte("MANIFEST_UNKNOWN")) {
		t.Fatalf("GET manifest %s:%s after delete: %d %s, want 404 MANIFEST_UNKNOWN", repo, ref, status, body)
	}
	if resp := do(t, "HEAD", base+"/v2/"+repo+"/manifests/"+ref, "", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD manifest %s:%s after delete: %s, want 404", repo, ref, resp.Status)
	}
}

// getBlob fetches a blob and fails unless it answers 200.
func getBlob(t *testing.T, base, repo string, d digest.Digest) []byte {
	t.Helper()
	resp := do(t, "GET", base+"/v2/"+repo+"/blobs/"+d.String(), "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET blob %s@%s: %s", repo, d, resp.Status)
	}
	return resp.body
}

// referrers lists the referrers of subject in repo through the referrers API, optionally
// filtered by artifactType (then the server must say it applied the filter).
func referrers(t *testing.T, base, repo string, subject digest.Digest, artifactType string) []ocispec.Descriptor {
	t.Helper()
	u := base + "/v2/" + repo + "/referrers/" + subject.String()
	if artifactType != "" {
		u += "?artifactType=" + url.QueryEscape(artifactType)
	}
	resp := do(t, "GET", u, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET referrers %s@%s: %s %s", repo, subject, resp.Status, resp.body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != ocispec.MediaTypeImageIndex {
		t.Fatalf("GET referrers %s@%s: Content-Type %q", repo, subject, ct)
	}
	if artifactType != "" && resp.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("GET referrers %s@%s?artifactType: OCI-Filters-Applied %q", repo, subject,
			resp.Header.Get("OCI-Filters-Applied"))
	}
	var idx ocispec.Index
	if err := json.Unmarshal(resp.body, &idx); err != nil {
		t.Fatalf("GET referrers %s@%s: %v\n%s", repo, subject, err, resp.body)
	}
	return idx.Manifests
}

// tagList returns the tags of repo.
func tagList(t *testing.T, base, repo string) []string {
	t.Helper()
	resp := do(t, "GET", base+"/v2/"+repo+"/tags/list", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET tags %s: %s %s", repo, resp.Status, resp.body)
	}
	var l struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(resp.body, &l); err != nil {
		t.Fatalf("GET tags %s: %v", repo, err)
	}
	return l.Tags
}

// response is an http.Response whose body was read.
type response struct {
	*http.Response
	body []byte
}

// do sends one request; a non-empty contentType is set on the request.
func do(t *testing.T, method, u, contentType string, body []byte) response {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, b := roundTrip(t, req)
	return response{resp, b}
}

func roundTrip(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp, b
}

// mustJSON marshals v or fails the test.
func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// describe renders descriptors for failure messages.
func describe(list []ocispec.Descriptor) string {
	var b bytes.Buffer
	for _, d := range list {
		fmt.Fprintf(&b, "\n  %s %s artifactType=%q", d.MediaType, d.Digest, d.ArtifactType)
	}
	return b.String()
}
