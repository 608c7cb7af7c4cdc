package registry

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage"
)

func TestParseRoute(t *testing.T) {
	cases := []struct {
		path string
		want route
		ok   bool
	}{
		{"/v2/", route{kind: kindBase}, true},
		{"/v2/_catalog", route{kind: kindCatalog}, true},
		{"/v2/a/b/blobs/uploads/", route{kind: kindUploads, name: "a/b"}, true},
		{"/v2/a/blobs/uploads/123", route{kind: kindUpload, name: "a", ref: "123"}, true},
		{"/v2/a/manifests/b/blobs/sha256:1", route{kind: kindBlob, name: "a/manifests/b", ref: "sha256:1"}, true},
		{"/v2/a/blobs/x/manifests/latest", route{kind: kindManifest, name: "a/blobs/x", ref: "latest"}, true},
		{"/v2/a/b/tags/list", route{kind: kindTags, name: "a/b"}, true},
		{"/v2/a/referrers/sha256:1", route{kind: kindReferrers, name: "a", ref: "sha256:1"}, true},
		{"/v2/a/b/blobs/sha256:1/url", route{kind: kindBlobURL, name: "a/b", ref: "sha256:1"}, true},
		{"/v2/a/blobs/uploads/url", route{kind: kindUpload, name: "a", ref: "url"}, true},
		{"/v2/a/manifests/url", route{kind: kindManifest, name: "a", ref: "url"}, true},
		{"/v2/a/manifests/", route{}, false},
		{"/v3/a/manifests/x", route{}, false},
	}
	for _, c := range cases {
		got, ok := parseRoute(c.path)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("parseRoute(%q) = %+v, %v; want %+v, %v", c.path, got, ok, c.want, c.ok)
		}
	}
}

func TestBadNames(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	for _, name := range []string{"Upper/case", "a/../b", "a/./b", "a//b", "-lead", "a..b",
		strings.Repeat("a", 256)} {
		resp, body := tr.do("POST", "/v2/"+name+"/blobs/uploads/", nil)
		tr.expect(resp, body, http.StatusBadRequest, CodeNameInvalid)
	}
	resp, body := tr.do("GET", "/v2/_catalog", nil)
	tr.expect(resp, body, http.StatusOK, "")
	if !strings.Contains(string(body), `"repositories":[]`) {
		t.Fatalf("bad names created repositories: %s", body)
	}
}

func TestBlobUploadFlows(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	content := make([]byte, 3*1024+7)
	rand.Read(content)
	d := digest.FromBytes(content)

	// Chunked, with an out-of-order chunk refused with 416 and the current Range.
	resp, body := tr.do("POST", "/v2/p/chunked/blobs/uploads/", nil)
	tr.expect(resp, body, http.StatusAccepted, "")
	loc := resp.Header.Get("Location")
	resp, body = tr.do("PATCH", loc, content[:1024], "Content-Range", "0-1023", "Content-Type", "application/octet-stream")
	tr.expect(resp, body, http.StatusAccepted, "")
	if r := resp.Header.Get("Range"); r != "0-1023" {
		t.Fatalf("Range after first chunk = %q", r)
	}
	loc = resp.Header.Get("Location")
	resp, body = tr.do("PATCH", loc, content[:1024], "Content-Range", "0-1023")
	tr.expect(resp, body, http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid)
	if r := resp.Header.Get("Range"); r != "0-1023" {
		t.Fatalf("Range on 416 = %q", r)
	}
	resp, _ = tr.do("GET", loc, nil)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Range") != "0-1023" {
		t.Fatalf("upload status %d %q", resp.StatusCode, resp.Header.Get("Range"))
	}
	// Final chunk in the PUT, out of order: 416, nothing stored.
	resp, body = tr.do("PUT", loc+"?digest="+d.String(), content[2048:], "Content-Range", fmt.Sprintf("2048-%d", len(content)-1))
	tr.expect(resp, body, http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid)
	resp, body = tr.do("PATCH", loc, content[1024:2048], "Content-Range", "1024-2047")
	tr.expect(resp, body, http.StatusAccepted, "")
	resp, body = tr.do("PUT", loc+"?digest="+d.String(), content[2048:], "Content-Range", fmt.Sprintf("2048-%d", len(content)-1))
	tr.expect(resp, body, http.StatusCreated, "")
	if got := resp.Header.Get("Location"); got != "/v2/p/chunked/blobs/"+d.String() {
		t.Fatalf("Location = %q", got)
	}
	tr.checkBlob("p/chunked", d, content)

	// Single POST with the body, sha512.
	d512 := digest.NewDigestFromBytes(digest.SHA512, sha512Sum(content))
	resp, body = tr.do("POST", "/v2/p/mono/blobs/uploads/?digest="+d512.String(), content)
	tr.expect(resp, body, http.StatusCreated, "")
	tr.checkBlob("p/mono", d512, content)

	// Streamed PATCH without Content-Range, then PUT, with a sha512 digest the session did
	// not hash while streaming.
	resp, _ = tr.do("POST", "/v2/p/stream/blobs/uploads/", nil)
	loc = resp.Header.Get("Location")
	resp, body = tr.do("PATCH", loc, content)
	tr.expect(resp, body, http.StatusAccepted, "")
	resp, body = tr.do("PUT", resp.Header.Get("Location")+"?digest="+d512.String(), nil)
	tr.expect(resp, body, http.StatusCreated, "")
	tr.checkBlob("p/stream", d512, content)

	// Range reads.
	resp, body = tr.do("GET", "/v2/p/chunked/blobs/"+d.String(), nil, "Range", "bytes=10-19")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, content[10:20]) ||
		resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 10-19/%d", len(content)) {
		t.Fatalf("range read: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	resp, _ = tr.do("GET", "/v2/p/chunked/blobs/"+d.String(), nil, "Range", "bytes=99999-")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("unsatisfiable range: %d", resp.StatusCode)
	}

	// Blobs are per repository: another repository does not see it until mounted.
	resp, body = tr.do("HEAD", "/v2/p/other/blobs/"+d.String(), nil)
	tr.expect(resp, body, http.StatusNotFound, "")
	resp, body = tr.do("POST", "/v2/p/other/blobs/uploads/?mount="+d.String()+"&from=p/chunked", nil)
	tr.expect(resp, body, http.StatusCreated, "")
	tr.checkBlob("p/other", d, content)
	// Mount of an unknown blob starts an upload instead.
	resp, body = tr.do("POST", "/v2/p/other/blobs/uploads/?mount=sha256:"+strings.Repeat("0", 64)+"&from=p/chunked", nil)
	tr.expect(resp, body, http.StatusAccepted, "")

	// Delete takes effect at once; the other repository keeps its link.
	resp, body = tr.do("DELETE", "/v2/p/chunked/blobs/"+d.String(), nil)
	tr.expect(resp, body, http.StatusAccepted, "")
	resp, body = tr.do("HEAD", "/v2/p/chunked/blobs/"+d.String(), nil)
	tr.expect(resp, body, http.StatusNotFound, "")
	tr.checkBlob("p/other", d, content)
}

func sha512Sum(b []byte) []byte { s := sha512.Sum512(b); return s[:] }

func (tr *testRegistry) checkBlob(repo string, d digest.Digest, want []byte) {
	tr.t.Helper()
	resp, body := tr.do("GET", "/v2/"+repo+"/blobs/"+d.String(), nil)
	tr.expect(resp, body, http.StatusOK, "")
	if !bytes.Equal(body, want) {
		tr.t.Fatalf("blob %s in %s: %d bytes differ from the %d pushed", d, repo, len(body), len(want))
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
		tr.t.Fatalf("Docker-Content-Digest = %q, want %s", got, d)
	}
}

// TestBadUploads: every bad upload gets the spec's error and stores nothing.
func TestBadUploads(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	content := []byte("some blob content")
	d := digest.FromBytes(content)
	wrong := digest.FromString("other content")

	// Wrong digest on the closing PUT: 400, no blob, session gone.
	resp, _ := tr.do("POST", "/v2/bad/repo/blobs/uploads/", nil)
	loc := resp.Header.Get("Location")
	resp, body := tr.do("PUT", loc+"?digest="+wrong.String(), content)
	tr.expect(resp, body, http.StatusBadRequest, CodeDigestInvalid)
	for _, dd := range []digest.Digest{d, wrong} {
		resp, body = tr.do("HEAD", "/v2/bad/repo/blobs/"+dd.String(), nil)
		tr.expect(resp, body, http.StatusNotFound, "")
	}
	if _, err := os.Stat(filesOf(tr.store).BlobPath(d)); err == nil {
		t.Fatal("blob with the wrong digest was committed")
	}
	// Wrong digest on a single POST.
	resp, body = tr.do("POST", "/v2/bad/repo/blobs/uploads/?digest="+wrong.String(), content)
	tr.expect(resp, body, http.StatusBadRequest, CodeDigestInvalid)

	// Malformed and unsupported digests.
	for _, bad := range []string{"sha256:xyz", "md5:" + strings.Repeat("a", 32), "sha256:" + strings.Repeat("A", 64), "nonsense"} {
		resp, _ = tr.do("POST", "/v2/bad/repo/blobs/uploads/", nil)
		resp, body = tr.do("PUT", resp.Header.Get("Location")+"?digest="+url.QueryEscape(bad), content)
		tr.expect(resp, body, http.StatusBadRequest, CodeDigestInvalid)
		resp, body = tr.do("GET", "/v2/bad/repo/blobs/"+url.PathEscape(bad), nil)
		tr.expect(resp, body, http.StatusBadRequest, CodeDigestInvalid)
	}
	// PUT without a digest.
	resp, _ = tr.do("POST", "/v2/bad/repo/blobs/uploads/", nil)
	resp, body = tr.do("PUT", resp.Header.Get("Location"), content)
	tr.expect(resp, body, http.StatusBadRequest, CodeDigestInvalid)

	// Session ids are UUIDs; anything else (a path trick) is unknown.
	for _, id := range []string{"..", "not-a-uuid", "00000000-0000-0000-0000-000000000000"} {
		resp, body = tr.do("PATCH", "/v2/bad/repo/blobs/uploads/"+id, content)
		tr.expect(resp, body, http.StatusNotFound, CodeBlobUploadUnknown)
	}
	resp, body = tr.do("PATCH", "/v2/bad/repo/blobs/uploads/..%2F..%2Fmeta.db", content)
	tr.expect(resp, body, http.StatusNotFound, CodeNameUnknown)
	// A session belongs to its repository.
	resp, _ = tr.do("POST", "/v2/bad/repo/blobs/uploads/", nil)
	id := resp.Header.Get("Docker-Upload-UUID")
	resp, body = tr.do("PATCH", "/v2/bad/other/blobs/uploads/"+id, content)
	tr.expect(resp, body, http.StatusNotFound, CodeBlobUploadUnknown)
	// Cancel, then the session is gone.
	resp, body = tr.do("DELETE", "/v2/bad/repo/blobs/uploads/"+id, nil)
	tr.expect(resp, body, http.StatusNoContent, "")
	resp, body = tr.do("GET", "/v2/bad/repo/blobs/uploads/"+id, nil)
	tr.expect(resp, body, http.StatusNotFound, CodeBlobUploadUnknown)
	if _, err := os.Stat(filesOf(tr.store).UploadPath(id)); !os.IsNotExist(err) {
		t.Fatalf("cancelled upload left its file: %v", err)
	}
	// Malformed Content-Range.
	resp, _ = tr.do("POST", "/v2/bad/repo/blobs/uploads/", nil)
	resp, body = tr.do("PATCH", resp.Header.Get("Location"), content, "Content-Range", "5-1")
	tr.expect(resp, body, http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid)
}

// TestTruncatedChunk: a chunk whose body stops short of its Content-Length leaves the session
// where it was, and the client can send it again.
func TestTruncatedChunk(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	content := make([]byte, 4096)
	rand.Read(content)
	resp, _ := tr.do("POST", "/v2/trunc/repo/blobs/uploads/", nil)
	loc := resp.Header.Get("Location")
	resp, body := tr.do("PATCH", loc, content[:1000], "Content-Range", "0-999")
	tr.expect(resp, body, http.StatusAccepted, "")

	// Send a PATCH announcing 3096 bytes but only 500, then hang up.
	u, _ := url.Parse(tr.srv.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Range: 1000-4095\r\nContent-Length: 3096\r\n\r\n", loc, u.Host)
	conn.Write(content[1000:1500])
	conn.(*net.TCPConn).CloseWrite()
	bufio.NewReader(conn).ReadString('\n') // the server answers or closes
	conn.Close()

	resp, _ = tr.do("GET", loc, nil)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Range") != "0-999" {
		t.Fatalf("after truncated chunk: %d Range %q, want 204 0-999", resp.StatusCode, resp.Header.Get("Range"))
	}
	resp, body = tr.do("PATCH", loc, content[1000:], "Content-Range", "1000-4095")
	tr.expect(resp, body, http.StatusAccepted, "")
	d := digest.FromBytes(content)
	resp, body = tr.do("PUT", resp.Header.Get("Location")+"?digest="+d.String(), nil)
	tr.expect(resp, body, http.StatusCreated, "")
	tr.checkBlob("trunc/repo", d, content)
}

func TestManifests(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	md, mb := tr.pushImage("m/repo", "v1", []byte("layer one"), nil)

	for _, ref := range []string{"v1", md.String()} {
		resp, body := tr.do("GET", "/v2/m/repo/manifests/"+ref, nil)
		tr.expect(resp, body, http.StatusOK, "")
		if !bytes.Equal(body, mb) || resp.Header.Get("Content-Type") != "application/vnd.oci.image.manifest.v1+json" ||
			resp.Header.Get("Docker-Content-Digest") != md.String() {
			t.Fatalf("GET %s: %s %q", ref, body, resp.Header)
		}
		resp, body = tr.do("HEAD", "/v2/m/repo/manifests/"+ref, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != fmt.Sprint(len(mb)) || len(body) != 0 {
			t.Fatalf("HEAD %s: %d %q", ref, resp.StatusCode, resp.Header.Get("Content-Length"))
		}
	}

	// A referrer with a subject, and one with another artifact type.
	sig, _ := tr.pushImage("m/repo", "sig", []byte("sig"), map[string]any{
		"artifactType": "application/vnd.example.sig", "subject": map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(mb)},
		"annotations": map[string]string{"k": "v"}})
	tr.pushImage("m/repo", "sbom", []byte("sbom"), map[string]any{
		"artifactType": "application/vnd.example.sbom", "subject": map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(mb)}})
	resp, body := tr.do("GET", "/v2/m/repo/referrers/"+md.String(), nil)
	tr.expect(resp, body, http.StatusOK, "")
	var idx struct {
		Manifests []struct {
			Digest       digest.Digest
			ArtifactType string
			Annotations  map[string]string
		}
	}
	json.Unmarshal(body, &idx)
	if len(idx.Manifests) != 2 || resp.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("referrers: %s", body)
	}
	resp, body = tr.do("GET", "/v2/m/repo/referrers/"+md.String()+"?artifactType=application/vnd.example.sig", nil)
	json.Unmarshal(body, &idx)
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sig || idx.Manifests[0].Annotations["k"] != "v" ||
		resp.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered referrers: %s %q", body, resp.Header)
	}

	// Tags list with pagination.
	resp, body = tr.do("GET", "/v2/m/repo/tags/list?n=2", nil)
	tr.expect(resp, body, http.StatusOK, "")
	if string(body) != `{"name":"m/repo","tags":["sbom","sig"]}` || !strings.Contains(resp.Header.Get("Link"), "last=sig") {
		t.Fatalf("tags page 1: %s Link %q", body, resp.Header.Get("Link"))
	}
	resp, body = tr.do("GET", "/v2/m/repo/tags/list?n=2&last=sig", nil)
	if string(body) != `{"name":"m/repo","tags":["v1"]}` || resp.Header.Get("Link") != "" {
		t.Fatalf("tags page 2: %s Link %q", body, resp.Header.Get("Link"))
	}
	resp, body = tr.do("GET", "/v2/m/repo/tags/list?n=-1", nil)
	tr.expect(resp, body, http.StatusBadRequest, CodePaginationInvalid)
	resp, body = tr.do("GET", "/v2/m/nothing/tags/list", nil)
	tr.expect(resp, body, http.StatusNotFound, CodeNameUnknown)

	// Deleting the manifest removes its tags at once and its referrer entries.
	resp, body = tr.do("DELETE", "/v2/m/repo/manifests/"+sig.String(), nil)
	tr.expect(resp, body, http.StatusAccepted, "")
	resp, body = tr.do("GET", "/v2/m/repo/manifests/sig", nil)
	tr.expect(resp, body, http.StatusNotFound, CodeManifestUnknown)
	_, body = tr.do("GET", "/v2/m/repo/referrers/"+md.String(), nil)
	json.Unmarshal(body, &idx)
	if len(idx.Manifests) != 1 {
		t.Fatalf("referrers after delete: %s", body)
	}
	// Deleting a tag leaves the manifest.
	resp, body = tr.do("DELETE", "/v2/m/repo/manifests/v1", nil)
	tr.expect(resp, body, http.StatusAccepted, "")
	resp, body = tr.do("GET", "/v2/m/repo/manifests/"+md.String(), nil)
	tr.expect(resp, body, http.StatusOK, "")
	resp, body = tr.do("DELETE", "/v2/m/repo/manifests/v1", nil)
	tr.expect(resp, body, http.StatusNotFound, CodeManifestUnknown)
}

// TestBadManifests: each bad manifest push gets the spec's error and changes nothing.
func TestBadManifests(t *testing.T) {
	tr := newTestRegistry(t, Options{MaxManifestSize: 1 << 20})
	cfg := tr.pushBlob("bm/repo", []byte(`{}`))
	missing := digest.FromString("never pushed")
	good := func(layer digest.Digest) []byte {
		b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": 2},
			"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 12}}})
		return b
	}
	ct := "application/vnd.oci.image.manifest.v1+json"
	cases := []struct {
		name   string
		ref    string
		body   []byte
		ctype  string
		status int
		code   Code
	}{
		{"missing blob", "t1", good(missing), ct, 400, CodeManifestBlobUnknown},
		{"malformed json", "t2", []byte(`{"schemaVersion":2,`), ct, 400, CodeManifestInvalid},
		{"not an object", "t3", []byte(`[1,2]`), ct, 400, CodeManifestInvalid},
		{"schema 1", "t4", []byte(`{"schemaVersion":1}`), ct, 400, CodeManifestInvalid},
		{"no config", "t5", []byte(`{"schemaVersion":2,"mediaType":"` + ct + `","layers":[]}`), ct, 400, CodeManifestInvalid},
		{"type mismatch", "t6", good(cfg), "application/vnd.oci.image.index.v1+json", 400, CodeManifestInvalid},
		{"unsupported type", "t7", []byte(`{"schemaVersion":2,"mediaType":"text/plain"}`), "text/plain", 400, CodeManifestInvalid},
		{"bad layer digest", "t8", bytes.Replace(good(cfg), []byte(cfg.String()[7:20]), []byte("ZZZZZZZZZZZZZ"), 1), ct, 400, CodeManifestInvalid},
		{"wrong digest ref", digest.FromString("x").String(), good(cfg), ct, 400, CodeDigestInvalid},
		{"bad digest ref", "sha256:baddigeststring", good(cfg), ct, 400, CodeDigestInvalid},
		{"bad tag", "-bad-tag", good(cfg), ct, 400, CodeTagInvalid},
		{"too large", "t9", append(good(cfg)[:len(good(cfg))-1], []byte(`,"annotations":{"a":"`+strings.Repeat("x", 1<<20)+`"}}`)...), ct, 413, CodeSizeInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := tr.do("PUT", "/v2/bm/repo/manifests/"+c.ref, c.body, "Content-Type", c.ctype)
			tr.expect(resp, body, c.status, c.code)
		})
	}
	resp, body := tr.do("GET", "/v2/bm/repo/tags/list", nil)
	if string(body) != `{"name":"bm/repo","tags":[]}` {
		t.Fatalf("bad pushes left tags: %d %s", resp.StatusCode, body)
	}
	// Sparse manifests are accepted only when configured.
	sparse := newTestRegistry(t, Options{SparseManifests: true})
	cfg2 := sparse.pushBlob("bm/repo", []byte(`{}`))
	if cfg2 != cfg {
		t.Fatal("config digest differs")
	}
	resp, body = sparse.do("PUT", "/v2/bm/repo/manifests/t1", good(missing), "Content-Type", ct)
	sparse.expect(resp, body, http.StatusCreated, "")
}

func TestCatalog(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	for _, r := range []string{"c/b", "c/a", "c/c"} {
		tr.pushBlob(r, []byte(r))
	}
	resp, body := tr.do("GET", "/v2/_catalog?n=2", nil)
	if string(body) != `{"repositories":["c/a","c/b"]}` || !strings.Contains(resp.Header.Get("Link"), "last=c%2Fb") {
		t.Fatalf("catalog: %s %q", body, resp.Header.Get("Link"))
	}
	_, body = tr.do("GET", "/v2/_catalog?n=2&last=c/b", nil)
	if string(body) != `{"repositories":["c/c"]}` {
		t.Fatalf("catalog page 2: %s", body)
	}
	resp, body = tr.do("GET", "/v2/", nil)
	tr.expect(resp, body, http.StatusOK, "")
	resp, body = tr.do("DELETE", "/v2/", nil)
	tr.expect(resp, body, http.StatusMethodNotAllowed, CodeUnsupported)
}

// filesOf is the filesystem blob store under a test's Store.
func filesOf(s *storage.Store) *storage.Files {
	b, _ := s.BlobStore("")
	return b.(*storage.Files)
}
