package imageapi_test

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestUploadAndDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	data := rawImage(10000)
	id := e.create("member-a", map[string]any{"name": "u", "disk_format": "raw", "container_format": "bare"})
	if r := e.do("member-a", "GET", "/v2/images/"+id+"/file", nil); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("download without data: %d %q", r.status, r.body)
	}
	e.upload("member-a", id, data)
	sum := md5.Sum(data)
	sha := sha256.Sum256(data)
	img := e.show(id)
	if img["checksum"] != hex.EncodeToString(sum[:]) || img["os_hash_value"] != hex.EncodeToString(sha[:]) || img["size"] != 10000.0 {
		t.Fatalf("hashes: %v", img)
	}
	cases := []struct {
		name   string
		hdr    []string
		status int
		body   []byte
		crange string
	}{
		{"whole", nil, 200, data, ""},
		{"range a-b", []string{"Range", "bytes=0-9"}, 206, data[:10], "bytes 0-9/10000"},
		{"range a-", []string{"Range", "bytes=9990-"}, 206, data[9990:], "bytes 9990-9999/10000"},
		{"suffix", []string{"Range", "bytes=-5"}, 206, data[9995:], "bytes 9995-9999/10000"},
		{"suffix longer than the image", []string{"Range", "bytes=-20000"}, 206, data, "bytes 0-9999/10000"},
		{"end past the end", []string{"Range", "bytes=9999-20000"}, 206, data[9999:], "bytes 9999-9999/10000"},
		{"legacy Content-Range", []string{"Content-Range", "bytes 10-19/*"}, 206, data[10:20], "bytes 10-19/10000"},
		{"start past the end", []string{"Range", "bytes=10000-"}, 416, nil, "bytes */10000"},
		{"end before start", []string{"Range", "bytes=9-1"}, 416, nil, "bytes */10000"},
		{"not bytes", []string{"Range", "pages=1-2"}, 416, nil, "bytes */10000"},
		{"garbage", []string{"Range", "bytes=x-y"}, 416, nil, "bytes */10000"},
		{"two ranges", []string{"Range", "bytes=0-1,5-6"}, 400, nil, ""},
	}
	for _, c := range cases {
		r := e.do("reader-a", "GET", "/v2/images/"+id+"/file", nil, c.hdr...)
		if r.status != c.status || r.header.Get("Content-Range") != c.crange || (c.body != nil && !bytes.Equal(r.body, c.body)) {
			t.Errorf("%s: %d %q (%d bytes)", c.name, r.status, r.header.Get("Content-Range"), len(r.body))
		}
		if c.status < 300 && (r.header.Get("Content-MD5") != hex.EncodeToString(sum[:]) || r.header.Get("Content-Type") != "application/octet-stream") {
			t.Errorf("%s: headers %v", c.name, r.header)
		}
	}
	if r := e.do("reader-a", "HEAD", "/v2/images/"+id+"/file", nil); r.status != 200 || r.header.Get("Content-Length") != "10000" || len(r.body) != 0 {
		t.Errorf("HEAD: %d %v", r.status, r.header)
	}
	if r := e.do("member-b", "GET", "/v2/images/"+id+"/file", nil); r.status != 404 {
		t.Errorf("stranger download: %d", r.status)
	}
	// Uploading twice is a conflict.
	if r := e.do("member-a", "PUT", "/v2/images/"+id+"/file", data, "Content-Type", "application/octet-stream"); r.status != 409 {
		t.Fatalf("second upload: %d", r.status)
	}
}

// TestChunkedAndEmptyUploads: glanceclient always chunks; OSC uploads an empty stdin chunked.
func TestChunkedAndEmptyUploads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, n := range []int{0, 3 << 20} {
		id := e.create("member-a", map[string]any{"name": "c", "disk_format": "raw", "container_format": "bare"})
		data := rawImage(n)
		req, _ := http.NewRequest("PUT", e.srv.URL+"/v2/images/"+id+"/file", io.MultiReader(bytes.NewReader(data)))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("X-Auth-Token", e.token["member-a"])
		req.TransferEncoding = []string{"chunked"}
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 204 {
			t.Fatalf("chunked upload of %d: %v %v %v", n, res.StatusCode, err, req.TransferEncoding)
		}
		res.Body.Close()
		if img := e.show(id); img["status"] != "active" || img["size"] != float64(n) {
			t.Fatalf("chunked upload of %d: %v", n, img)
		}
		if r := e.do("member-a", "GET", "/v2/images/"+id+"/file", nil); r.status != 200 || !bytes.Equal(r.body, data) {
			t.Fatalf("download of %d: %d, %d bytes", n, r.status, len(r.body))
		}
	}
}

// TestUploadRefusals: each refused upload leaves the image queued with no data.
func TestUploadRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create("member-a", map[string]any{"name": "r", "disk_format": "qcow2", "container_format": "bare"})
	noFormat := e.create("member-a", map[string]any{"name": "nf"})
	data := rawImage(4096)
	cases := []struct {
		name, who, id string
		hdr           []string
		want          int
	}{
		{"json content type", "member-a", id, []string{"Content-Type", "application/json"}, 415},
		{"no content type", "member-a", id, []string{"Content-Type", ""}, 415},
		{"more than x-openstack-image-size", "member-a", id, []string{"X-Openstack-Image-Size", "100"}, 400},
		{"less than x-openstack-image-size", "member-a", id, []string{"X-Openstack-Image-Size", "5000"}, 400},
		{"bad x-openstack-image-size", "member-a", id, []string{"X-Openstack-Image-Size", "-1"}, 400},
		{"over the size cap", "member-a", id, []string{"X-Openstack-Image-Size", "1099511627777"}, 413},
		{"not what disk_format says", "member-a", id, nil, 415},
		{"no formats", "member-a", noFormat, nil, 400},
		{"reader", "reader-a", id, nil, 403},
		{"stranger", "member-b", id, nil, 404},
	}
	for _, c := range cases {
		hdr := append([]string{"Content-Type", "application/octet-stream"}, c.hdr...)
		if r := e.do(c.who, "PUT", "/v2/images/"+c.id+"/file", data, hdr...); r.status != c.want {
			t.Errorf("%s: %d, want %d: %s", c.name, r.status, c.want, r.body)
		}
		if img := e.show(c.id); img["status"] != "queued" || img["size"] != nil || img["checksum"] != nil {
			t.Errorf("%s: image left %v size %v", c.name, img["status"], img["size"])
		}
	}
	repos, _, _ := e.store.Repositories(ctx, "", 0)
	if len(repos) != 0 {
		t.Fatalf("refused uploads left repositories %v", repos)
	}
}

// TestClientDisconnectsMidUpload: the image goes back to queued, with no data.
func TestClientDisconnectsMidUpload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, chunked := range []bool{false, true} {
		id := e.create("member-a", map[string]any{"name": "dc", "disk_format": "raw", "container_format": "bare"})
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(conn)
		fmt.Fprintf(w, "PUT /v2/images/%s/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\nContent-Type: application/octet-stream\r\n", id, e.token["member-a"])
		if chunked {
			fmt.Fprintf(w, "Transfer-Encoding: chunked\r\n\r\n%x\r\n", 1<<20)
		} else {
			fmt.Fprintf(w, "Content-Length: %d\r\n\r\n", 10<<20)
		}
		w.Write(rawImage(1 << 20))
		w.Flush()
		e.waitStatus(id, "saving")
		conn.Close()
		img := e.waitStatus(id, "queued")
		if img["size"] != nil || img["checksum"] != nil {
			t.Fatalf("after disconnect: %v", img)
		}
		// And it takes a complete upload afterwards.
		e.upload("member-a", id, rawImage(1000))
	}
}

// TestList drives the filters, sorting and paging of §1.6.
func TestList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mk := func(who, name string, extra map[string]any) string {
		f := map[string]any{"name": name, "disk_format": "raw", "container_format": "bare"}
		for k, v := range extra {
			f[k] = v
		}
		return e.create(who, f)
	}
	a1 := mk("member-a", "alpha", map[string]any{"tags": []string{"x", "y"}, "xloud_template": "true"})
	mk("member-a", "beta, the second", map[string]any{"tags": []string{"x"}, "visibility": "private"})
	mk("member-a", "gamma", map[string]any{"os_hidden": true})
	mk("member-a", "delta", map[string]any{"visibility": "community", "protected": true})
	mk("member-b", "epsilon", map[string]any{"visibility": "community"})
	mk("admin", "zeta", map[string]any{"visibility": "public"})
	mk("member-b", "eta", nil) // shared, a not a member
	e.upload("member-a", a1, rawImage(2048))
	start := e.show(a1)["created_at"].(string)

	cases := []struct {
		who, query string
		want       []string
	}{
		{"member-a", "", []string{"zeta", "delta", "beta, the second", "alpha"}},
		{"member-a", "sort=name:asc", []string{"alpha", "beta, the second", "delta", "zeta"}},
		{"member-a", "sort_key=name&sort_dir=asc", []string{"alpha", "beta, the second", "delta", "zeta"}},
		{"member-a", "sort_key=name&sort_key=created_at&sort_dir=desc&sort_dir=asc", []string{"zeta", "delta", "beta, the second", "alpha"}},
		{"member-a", "name=alpha", []string{"alpha"}},
		{"member-a", `name=in:alpha,"beta, the second"`, []string{"beta, the second", "alpha"}},
		{"member-a", "status=active", []string{"alpha"}},
		{"member-a", "status=in:active,queued&sort=name:asc&limit=2", []string{"alpha", "beta, the second"}},
		{"member-a", "visibility=private", []string{"beta, the second"}},
		{"member-a", "visibility=community", []string{"epsilon", "delta"}},
		{"member-a", "visibility=all&sort=name:asc", []string{"alpha", "beta, the second", "delta", "epsilon", "zeta"}},
		{"member-a", "visibility=public", []string{"zeta"}},
		{"member-a", "os_hidden=true", []string{"gamma"}},
		{"member-a", "tag=x&tag=y", []string{"alpha"}},
		{"member-a", "tag=x&sort=name:desc", []string{"beta, the second", "alpha"}},
		{"member-a", "size_min=2048&size_max=2048", []string{"alpha"}},
		{"member-a", "size_min=2049", []string{}},
		{"member-a", "protected=true", []string{"delta"}},
		{"member-a", "xloud_template=true", []string{"alpha"}},
		{"member-a", "owner=" + e.project["a"] + "&sort=name:asc", []string{"alpha", "beta, the second", "delta"}},
		{"member-a", "disk_format=raw&container_format=bare&name=zeta", []string{"zeta"}},
		{"member-a", "created_at=lte:" + start + "&name=alpha", []string{"alpha"}},
		{"member-a", "created_at=gt:2999-01-01T00:00:00Z", []string{}},
		{"member-a", "updated_at=gte:2000-01-01&name=zeta", []string{"zeta"}},
		{"member-b", "", []string{"eta", "zeta", "epsilon"}},
		{"admin", "sort=name:asc", []string{"alpha", "beta, the second", "eta", "zeta"}}, // not others' community images
		{"admin", "visibility=all&sort=name:asc&limit=3", []string{"alpha", "beta, the second", "delta"}},
	}
	for _, c := range cases {
		if got := names(t, e.do(c.who, "GET", "/v2/images?"+escapeQuery(c.query), nil)); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s ?%s: %q, want %q", c.who, c.query, got, c.want)
		}
	}
	// Paging: next links walk every image once, and start with /v2/.
	var all []string
	next := "/v2/images?sort=name:asc&limit=2"
	for pages := 0; next != ""; pages++ {
		r := e.do("member-a", "GET", next, nil)
		body := r.json(t)
		all = append(all, names(t, r)...)
		if !strings.HasPrefix(body["first"].(string), "/v2/images?") || strings.Contains(body["first"].(string), "marker") ||
			body["schema"] != "/v2/schemas/images" || pages > 5 {
			t.Fatalf("page %d: %s", pages, r.body)
		}
		next, _ = body["next"].(string)
		if next != "" && !strings.HasPrefix(next, "/v2/images?") {
			t.Fatalf("next %q", next)
		}
	}
	if fmt.Sprint(all) != "[alpha beta, the second delta zeta]" {
		t.Fatalf("paged: %q", all)
	}
	bad := []string{
		"limit=-1", "limit=x", "marker=0b7e5b21-3c34-4bb8-a1f0-5d9f1f3b2c11", "marker=nope", "sort_key=bogus",
		"sort_dir=up", "sort=name:up", "sort=bogus", "sort=name&sort_key=name", "sort_key=name&sort_key=size&sort_dir=asc&sort_dir=desc&sort_dir=asc",
		"visibility=everyone", "member_status=maybe", "size_min=x", "size_max=-5", "os_hidden=maybe", "protected=yes",
		"created_at=gte:yesterday", "created_at=after:2020-01-01T00:00:00Z", "name=like:alp", "status=in:\"active",
		"changes-since=2020-01-01T00:00:00Z", "name=%zz",
	}
	for _, q := range bad {
		if r := e.do("member-a", "GET", "/v2/images?"+escapeQuery(q), nil); r.status != 400 {
			t.Errorf("?%s: %d, want 400: %s", q, r.status, r.body)
		}
	}
}

// TestHashingSHA512: with Glance's default algorithm the multihash is sha512.
func TestHashingSHA512(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cat.HashAlgo = "sha512"
	id := e.create("member-a", map[string]any{"name": "h", "disk_format": "raw", "container_format": "bare"})
	e.upload("member-a", id, rawImage(5000))
	img := e.show(id)
	if img["os_hash_algo"] != "sha512" || len(img["os_hash_value"].(string)) != 128 {
		t.Fatalf("sha512 image: %v", img)
	}
}

func TestUploadIsStreamed(t *testing.T) {
	t.Parallel()
	// A slow client: the server holds the image in saving while bytes trickle in, and the
	// result is exact.
	e := newEnv(t)
	id := e.create("member-a", map[string]any{"name": "s", "disk_format": "raw", "container_format": "bare"})
	pr, pw := io.Pipe()
	done := make(chan resp)
	go func() {
		req, _ := http.NewRequest("PUT", e.srv.URL+"/v2/images/"+id+"/file", pr)
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("X-Auth-Token", e.token["member-a"])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- resp{}
			return
		}
		res.Body.Close()
		done <- resp{status: res.StatusCode}
	}()
	data := rawImage(2 << 20)
	pw.Write(data[:1<<20])
	e.waitStatus(id, "saving")
	time.Sleep(50 * time.Millisecond)
	pw.Write(data[1<<20:])
	pw.Close()
	if r := <-done; r.status != 204 {
		t.Fatalf("streamed upload: %d", r.status)
	}
	if r := e.do("member-a", "GET", "/v2/images/"+id+"/file", nil); !bytes.Equal(r.body, data) {
		t.Fatal("streamed upload differs")
	}
}

// escapeQuery escapes what may not stand in a request line.
func escapeQuery(q string) string { return strings.NewReplacer(" ", "%20", `"`, "%22").Replace(q) }
