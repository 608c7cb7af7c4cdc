package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage"
)

// startS3Server starts a server whose blobs go to a fresh versitygw bucket.
func startS3Server(t *testing.T, backend string, redisURL string) (*testenv.Server, *testenv.S3, string) {
	t.Helper()
	s3 := testenv.StartS3(t)
	url := s3.URL(s3.Bucket("xloud"), "blobs")
	opt := testenv.ServerOptions{Args: []string{"--store", "s3=" + url}}
	if backend == "redis" {
		opt.RedisURL = redisURL
	}
	srv := testenv.StartServer(t, opt)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.Log())
		}
	})
	return srv, s3, url
}

// staging lists the upload staging left in an S3 store (multipart uploads, tails).
func staging(t *testing.T, url string) []storage.Entry {
	t.Helper()
	b, err := storage.OpenS3(url)
	if err != nil {
		t.Fatal(err)
	}
	var out []storage.Entry
	if err := b.Walk(context.Background(), func(e storage.Entry) error {
		if e.Key == "" {
			out = append(out, e)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// errorCode is the first OCI error code of a response body.
func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not an OCI error body: %q", body)
	}
	return e.Errors[0].Code
}

// TestS3KilledServerResumes kills the server (SIGKILL) while a chunk streams into a
// multipart upload on S3, restarts it, and resumes the session from its last acknowledged
// chunk: the parts written by the dead request are overwritten, the blob is exact, and no
// staging is left in the bucket.
func TestS3KilledServerResumes(t *testing.T) {
	redisURL := testenv.StartRedis(t)
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			srv, _, url := startS3Server(t, backend, redisURL)
			c := &client{t: t, base: srv.URL()}
			full := randomBytes(32<<20 + 3)
			resp := c.must(202, "POST", "/v2/s3/resume/blobs/uploads/", nil)
			loc := strings.TrimPrefix(resp.Header.Get("Location"), srv.URL())
			acked := 12 << 20
			for off := 0; off < acked; off += 6 << 20 {
				c.must(202, "PATCH", loc, full[off:off+6<<20], "Content-Range", fmt.Sprintf("%d-%d", off, off+6<<20-1))
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				c.do("PATCH", loc, slowReader{bytes.NewReader(full[acked:]), 2 * time.Millisecond},
					"Content-Range", fmt.Sprintf("%d-%d", acked, len(full)-1))
			}()
			time.Sleep(600 * time.Millisecond) // past the first 16 MiB part of the dying chunk
			srv.Kill()
			<-done

			srv.Start()
			c.base = srv.URL()
			resp = c.must(204, "GET", loc, nil)
			if r := resp.Header.Get("Range"); r != fmt.Sprintf("0-%d", acked-1) {
				t.Fatalf("after the restart the session says Range %q, want 0-%d", r, acked-1)
			}
			d := digest.FromBytes(full)
			c.must(404, "HEAD", "/v2/s3/resume/blobs/"+d.String(), nil)
			c.must(202, "PATCH", loc, full[acked:len(full)-3], "Content-Range", fmt.Sprintf("%d-%d", acked, len(full)-4))
			c.must(201, "PUT", loc+"?digest="+d.String(), full[len(full)-3:], "Content-Range", fmt.Sprintf("%d-%d", len(full)-3, len(full)-1))
			_, b, err := c.do("GET", "/v2/s3/resume/blobs/"+d.String(), nil)
			if err != nil || !bytes.Equal(b, full) {
				t.Fatalf("resumed blob differs (%d bytes, %v)", len(b), err)
			}
			if st := staging(t, url); len(st) != 0 {
				t.Fatalf("staging left after the commit: %+v", st)
			}
		})
	}
}

// TestS3StoreDown stops the S3 server in the middle of a chunked upload: the chunk and the
// closing PUT get 503 UNAVAILABLE, /readyz says so, the Image API answers 503 in Glance's
// format, nothing is visible; once S3 is back the session resumes from its last
// acknowledged chunk and a new push succeeds.
func TestS3StoreDown(t *testing.T) {
	redisURL := testenv.StartRedis(t)
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			srv, s3, _ := startS3Server(t, backend, redisURL)
			c := &client{t: t, base: srv.URL()}
			api := &client{t: t, base: "http://" + srv.APIAddr}
			full := randomBytes(7 << 20)
			d := digest.FromBytes(full)
			resp := c.must(202, "POST", "/v2/s3/down/blobs/uploads/", nil)
			loc := strings.TrimPrefix(resp.Header.Get("Location"), srv.URL())
			c.must(202, "PATCH", loc, full[:6<<20], "Content-Range", fmt.Sprintf("0-%d", 6<<20-1))
			var img struct{ ID string }
			resp, b, err := api.do("POST", "/v2/images", strings.NewReader(`{"name":"s3-down","disk_format":"raw","container_format":"bare"}`),
				"Content-Type", "application/json")
			if err != nil || resp.StatusCode != 201 || json.Unmarshal(b, &img) != nil {
				t.Fatalf("create image: %v %v %s", err, resp, b)
			}

			s3.Stop()
			resp, b, err = c.do("PATCH", loc, bytes.NewReader(full[6<<20:]), "Content-Range", fmt.Sprintf("%d-%d", 6<<20, len(full)-1))
			if err != nil || resp.StatusCode != http.StatusServiceUnavailable || errorCode(t, b) != "UNAVAILABLE" {
				t.Fatalf("chunk while S3 is down: %v %v %s", err, resp, b)
			}
			resp, b, err = c.do("PUT", loc+"?digest="+d.String(), bytes.NewReader(full[6<<20:]), "Content-Range", fmt.Sprintf("%d-%d", 6<<20, len(full)-1))
			if err != nil || resp.StatusCode != http.StatusServiceUnavailable || errorCode(t, b) != "UNAVAILABLE" {
				t.Fatalf("closing PUT while S3 is down: %v %v %s", err, resp, b)
			}
			resp, b, err = c.do("POST", "/v2/s3/down/blobs/uploads/?digest="+digest.FromBytes([]byte("small")).String(), strings.NewReader("small"))
			if err != nil || resp.StatusCode != http.StatusServiceUnavailable || errorCode(t, b) != "UNAVAILABLE" {
				t.Fatalf("monolithic push while S3 is down: %v %v %s", err, resp, b)
			}
			resp, b, err = api.do("PUT", "/v2/images/"+img.ID+"/file", bytes.NewReader(full), "Content-Type", "application/octet-stream")
			if err != nil || resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(b, []byte("503 Service Unavailable")) {
				t.Fatalf("image upload while S3 is down: %v %v %s", err, resp, b)
			}
			resp, b, _ = c.do("GET", "/readyz", nil)
			if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(b, []byte("blob store s3")) {
				t.Fatalf("/readyz while S3 is down: %d %s", resp.StatusCode, b)
			}
			c.must(404, "HEAD", "/v2/s3/down/blobs/"+d.String(), nil)

			s3.Restart()
			c.must(200, "GET", "/readyz", nil)
			c.must(404, "HEAD", "/v2/s3/down/blobs/"+d.String(), nil)
			c.must(404, "HEAD", "/v2/s3/down/blobs/"+digest.FromBytes([]byte("small")).String(), nil)
			resp = c.must(204, "GET", loc, nil)
			if r := resp.Header.Get("Range"); r != fmt.Sprintf("0-%d", 6<<20-1) {
				t.Fatalf("after the outage the session says Range %q", r)
			}
			c.must(201, "PUT", loc+"?digest="+d.String(), full[6<<20:], "Content-Range", fmt.Sprintf("%d-%d", 6<<20, len(full)-1))
			if _, b, _ := c.do("GET", "/v2/s3/down/blobs/"+d.String(), nil); !bytes.Equal(b, full) {
				t.Fatal("blob differs after the outage")
			}
			if _, err := c.pushBlob("s3/down", []byte("small")); err != nil {
				t.Fatalf("a new push after the outage: %v", err)
			}
			api.must(204, "PUT", "/v2/images/"+img.ID+"/file", full, "Content-Type", "application/octet-stream")
			// The image's data reads back from S3, whole and by range.
			if _, b, err := api.do("GET", "/v2/images/"+img.ID+"/file", nil); err != nil || !bytes.Equal(b, full) {
				t.Fatalf("image download from S3: %d bytes, %v", len(b), err)
			}
			resp, b, err = api.do("GET", "/v2/images/"+img.ID+"/file", nil, "Range", "bytes=100-5242979")
			if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, full[100:5242980]) {
				t.Fatalf("ranged image download from S3: %v %v, %d bytes", resp, err, len(b))
			}
		})
	}
}

// TestS3ChunkedPushNoCopy pushes a blob in 1 MiB chunks (under S3's 5 MiB part minimum) and
// reads versitygw's access log: no server-side copy of any kind, parts of at least 5 MiB
// (versitygw refuses to complete otherwise), and one multipart upload completed in place.
func TestS3ChunkedPushNoCopy(t *testing.T) {
	srv, s3, url := startS3Server(t, "embedded", "")
	c := &client{t: t, base: srv.URL()}
	full := randomBytes(24<<20 + 5)
	resp := c.must(202, "POST", "/v2/s3/chunks/blobs/uploads/", nil)
	loc := strings.TrimPrefix(resp.Header.Get("Location"), srv.URL())
	for off := 0; off < len(full); off += 1 << 20 {
		end := min(off+1<<20, len(full))
		resp = c.must(202, "PATCH", loc, full[off:end], "Content-Range", fmt.Sprintf("%d-%d", off, end-1))
		loc = strings.TrimPrefix(resp.Header.Get("Location"), srv.URL())
	}
	d := digest.FromBytes(full)
	c.must(201, "PUT", loc+"?digest="+d.String(), nil)
	if _, b, _ := c.do("GET", "/v2/s3/chunks/blobs/"+d.String(), nil); !bytes.Equal(b, full) {
		t.Fatal("chunked blob differs")
	}
	for _, op := range []string{"s3_CopyObject", "s3_UploadPartCopy"} {
		if n := s3.Requests(" " + op + " "); n != 0 {
			t.Errorf("%d %s requests during a chunked push, want 0", n, op)
		}
	}
	if n := s3.Requests(" s3_CompleteMultipartUpload "); n != 1 {
		t.Errorf("%d completed multipart uploads, want 1", n)
	}
	// 24 MiB + 5 in 1 MiB chunks: parts of 5 MiB as the tail reaches the minimum.
	if n := s3.Requests(" s3_UploadPart "); n != 5 {
		t.Errorf("%d parts uploaded, want 5", n)
	}
	if st := staging(t, url); len(st) != 0 {
		t.Fatalf("staging left after the commit: %+v", st)
	}
	t.Logf("versitygw requests: %d GetObject (tails read back), %d PutObject (tails), %d UploadPart",
		s3.Requests(" s3_GetObject "), s3.Requests(" s3_PutObject "), s3.Requests(" s3_UploadPart "))
}

// TestStoreFlagErrors: every malformed --store or --default-store stops serve with a message
// that names the problem and never echoes a secret; nothing is created.
func TestStoreFlagErrors(t *testing.T) {
	s3 := testenv.StartS3(t)
	good := s3.URL(s3.Bucket("flags"), "")
	for _, c := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--store", "noequals"}, nil, "want NAME=URL"},
		{[]string{"--store", "Bad Name=file:///tmp/x"}, nil, "want NAME=URL"},
		{[]string{"--store", "a=ftp://host/x"}, nil, "want file:///DIR or s3://"},
		{[]string{"--store", "a=file:///tmp/a", "--store", "a=file:///tmp/b"}, nil, `store "a" given twice`},
		{[]string{"--store", "a=s3://bucket?endpoint=http://127.0.0.1:1&region=r&colour=blue"}, nil, `unknown parameter "colour"`},
		{[]string{"--store", "a=s3://bucket?endpoint=ftp://x&region=r"}, nil, "is not an http(s) URL"},
		{[]string{"--store", "a=s3://bucket?endpoint=http://127.0.0.1:1&part_size=1024"}, nil, "part_size"},
		{[]string{"--store", "a=s3://bucket?endpoint=http://127.0.0.1:1&redirect=1h"}, nil, "redirect"},
		{[]string{"--store", "a=s3://bucket?endpoint=http://127.0.0.1:1"}, []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}, "no credentials"},
		{[]string{"--store", "a=" + good, "--default-store", "b"}, nil, `default store "b" is not configured`},
		{[]string{"--default-store", "b"}, nil, "--default-store b: no such --store"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		_, stderr, code := run(t, c.env, append([]string{"serve", "--auth", "none", "--data-dir", dir,
			"--registry-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0"}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("serve %v: exit %d, stderr %q; want an error saying %q", c.args, code, stderr, c.want)
		}
		if strings.Contains(stderr, s3.SecretKey) {
			t.Errorf("serve %v printed the secret key: %q", c.args, stderr)
		}
		mustNotExist(t, dir)
	}
}

// TestS3Redirect: with redirect= on the store, a whole-blob GET answers 307 to a presigned
// URL that fetches the blob from S3 directly; a ranged GET and HEAD stay on the server.
func TestS3Redirect(t *testing.T) {
	s3 := testenv.StartS3(t)
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--store", "s3=" + s3.URL(s3.Bucket("xloud"), "", "redirect", "2m")}})
	c := &client{t: t, base: srv.URL()}
	content := randomBytes(6<<20 + 1)
	d, err := c.pushBlob("s3/redirect", content)
	if err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(srv.URL() + "/v2/s3/redirect/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, "http://"+s3.Addr+"/xloud/data/") || !strings.Contains(loc, "X-Amz-Expires=120") {
		t.Fatalf("GET: %d Location %q; want 307 to a 2-minute presigned URL on %s", resp.StatusCode, loc, s3.Addr)
	}
	_, b, err := c.do("GET", "/v2/s3/redirect/blobs/"+d.String(), nil) // followed
	if err != nil || !bytes.Equal(b, content) {
		t.Fatalf("following the redirect: %d bytes, %v", len(b), err)
	}
	resp, b, err = c.do("GET", "/v2/s3/redirect/blobs/"+d.String(), nil, "Range", "bytes=6291450-")
	if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, content[6291450:]) || resp.Request.URL.Host != srv.RegistryAddr {
		t.Fatalf("ranged GET: %v %v, %d bytes", resp, err, len(b))
	}
	c.must(200, "HEAD", "/v2/s3/redirect/blobs/"+d.String(), nil)
}
