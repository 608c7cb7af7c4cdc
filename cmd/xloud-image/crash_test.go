package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage"
)

// client is a minimal Registry API client for the process-level tests.
type client struct {
	t    *testing.T
	base string
	auth string // a bearer token sent with every request, when set
}

func (c *client) do(method, path string, body io.Reader, hdr ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return nil, nil, err
	}
	if c.auth != "" {
		req.Header.Set("Authorization", "Bearer "+c.auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func (c *client) must(status int, method, path string, body []byte, hdr ...string) *http.Response {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	resp, b, err := c.do(method, path, rd, hdr...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	if resp.StatusCode != status {
		c.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, status, b)
	}
	return resp
}

func (c *client) pushBlob(repo string, content []byte) (digest.Digest, error) {
	d := digest.FromBytes(content)
	resp, b, err := c.do("POST", "/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return d, err
	}
	if resp.StatusCode != 202 {
		return d, fmt.Errorf("POST: %d %s", resp.StatusCode, b)
	}
	resp, b, err = c.do("PUT", resp.Header.Get("Location")+"?digest="+d.String(), bytes.NewReader(content))
	if err != nil {
		return d, err
	}
	if resp.StatusCode != 201 {
		return d, fmt.Errorf("PUT: %d %s", resp.StatusCode, b)
	}
	return d, nil
}

type pushed struct {
	repo, tag string
	manifest  []byte
	blobs     map[digest.Digest][]byte
}

func (c *client) pushImage(repo, tag string, layerSize int) (pushed, error) {
	p := pushed{repo: repo, tag: tag, blobs: map[digest.Digest][]byte{}}
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","tag":%q}`, tag))
	layer := make([]byte, layerSize)
	rand.Read(layer)
	cd, err := c.pushBlob(repo, cfg)
	if err != nil {
		return p, err
	}
	ld, err := c.pushBlob(repo, layer)
	if err != nil {
		return p, err
	}
	p.blobs[cd], p.blobs[ld] = cfg, layer
	p.manifest = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`, cd, len(cfg), ld, len(layer)))
	resp, b, err := c.do("PUT", "/v2/"+repo+"/manifests/"+tag, bytes.NewReader(p.manifest),
		"Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if err != nil {
		return p, err
	}
	if resp.StatusCode != 201 {
		return p, fmt.Errorf("manifest PUT: %d %s", resp.StatusCode, b)
	}
	return p, nil
}

// checkPushed asserts an acknowledged image reads back byte for byte.
func (c *client) checkPushed(p pushed) {
	c.t.Helper()
	resp, b, err := c.do("GET", "/v2/"+p.repo+"/manifests/"+p.tag, nil)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, p.manifest) {
		c.t.Fatalf("manifest %s:%s after crash: %v %v", p.repo, p.tag, err, resp)
	}
	for d, want := range p.blobs {
		resp, b, err := c.do("GET", "/v2/"+p.repo+"/blobs/"+d.String(), nil)
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, want) {
			c.t.Fatalf("blob %s of %s:%s after crash: %v %v", d, p.repo, p.tag, err, resp)
		}
	}
}

// slowReader feeds data slowly so a request is surely in flight when the server dies.
type slowReader struct {
	r     io.Reader
	delay time.Duration
}

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.delay)
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	return s.r.Read(p)
}

// TestCrashDuringPushes kills the server with SIGKILL while uploads and pushes are in flight,
// restarts it on the same data, and checks that everything acknowledged is intact, nothing
// partial is visible, and an interrupted chunked upload resumes.
func TestCrashDuringPushes(t *testing.T) {
	redisURL := testenv.StartRedis(t)
	for _, backend := range []string{"embedded", "redis", "embedded-s3", "redis-s3"} {
		t.Run(backend, func(t *testing.T) {
			opt := testenv.ServerOptions{}
			if strings.HasPrefix(backend, "redis") {
				opt.RedisURL = redisURL
			}
			onS3 := strings.HasSuffix(backend, "-s3")
			if onS3 {
				if opt.RedisURL != "" {
					// Its own Redis: records of the filesystem run name a store this
					// server does not have.
					opt.RedisURL = testenv.StartRedis(t)
				}
				s3 := testenv.StartS3(t)
				opt.Args = []string{"--store", "s3=" + s3.URL(s3.Bucket("xloud"), "blobs")}
			}
			srv := testenv.StartServer(t, opt)
			c := &client{t: t, base: srv.URL()}

			var done []pushed
			for i := 0; i < 5; i++ {
				p, err := c.pushImage("crash/repo", fmt.Sprintf("v%d", i), 256<<10)
				if err != nil {
					t.Fatal(err)
				}
				done = append(done, p)
			}
			// A chunked upload with its first chunk acknowledged.
			full := make([]byte, 3<<20)
			rand.Read(full)
			resp := c.must(202, "POST", "/v2/crash/resume/blobs/uploads/", nil)
			resp = c.must(202, "PATCH", resp.Header.Get("Location"), full[:2<<20], "Content-Range", fmt.Sprintf("0-%d", 2<<20-1))
			uploadPath := strings.TrimPrefix(resp.Header.Get("Location"), srv.URL())

			// In flight when the server dies: a slow monolithic blob, a slow chunk on the
			// resumable session, and a stream of image pushes.
			partial := make([]byte, 32<<20)
			rand.Read(partial)
			partialDigest := digest.FromBytes(partial)
			var wg sync.WaitGroup
			var mu sync.Mutex
			wg.Add(3)
			go func() {
				defer wg.Done()
				r, _, err := c.do("POST", "/v2/crash/partial/blobs/uploads/", nil)
				if err == nil {
					c.do("PUT", r.Header.Get("Location")+"?digest="+partialDigest.String(), slowReader{bytes.NewReader(partial), time.Millisecond})
				}
			}()
			go func() {
				defer wg.Done()
				c.do("PATCH", uploadPath, slowReader{bytes.NewReader(full[2<<20:]), 60 * time.Millisecond},
					"Content-Range", fmt.Sprintf("%d-%d", 2<<20, len(full)-1))
			}()
			stop := make(chan struct{})
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					p, err := c.pushImage("crash/busy", fmt.Sprintf("b%d", i), 64<<10)
					if err != nil {
						return // the server died under us
					}
					mu.Lock()
					done = append(done, p)
					mu.Unlock()
				}
			}()
			time.Sleep(300 * time.Millisecond)
			srv.Kill()
			close(stop)
			wg.Wait()

			srv.Start()
			c.base = srv.URL()
			mu.Lock()
			t.Logf("%d images acknowledged before the crash", len(done))
			for _, p := range done {
				c.checkPushed(p)
			}
			mu.Unlock()
			resp, _, _ = c.do("HEAD", "/v2/crash/partial/blobs/"+partialDigest.String(), nil)
			if resp.StatusCode != 404 {
				t.Fatalf("blob of an interrupted upload is visible: %d", resp.StatusCode)
			}
			if !onS3 { // on S3 the acknowledged blobs were read back above
				checkBlobFiles(t, srv.DataDir)
			}

			// The chunked session resumes where its last acknowledged chunk ended.
			resp = c.must(204, "GET", uploadPath, nil)
			if r := resp.Header.Get("Range"); r != fmt.Sprintf("0-%d", 2<<20-1) {
				t.Fatalf("resumed session Range %q", r)
			}
			d := digest.FromBytes(full)
			c.must(201, "PUT", uploadPath+"?digest="+d.String(), full[2<<20:], "Content-Range", fmt.Sprintf("%d-%d", 2<<20, len(full)-1))
			_, b, _ := c.do("GET", "/v2/crash/resume/blobs/"+d.String(), nil)
			if !bytes.Equal(b, full) {
				t.Fatal("resumed upload differs")
			}
		})
	}
}

// checkBlobFiles asserts every committed blob file holds exactly the bytes its name says.
func checkBlobFiles(t *testing.T, dataDir string) {
	t.Helper()
	n := 0
	filepath.WalkDir(filepath.Join(dataDir, "blobs"), func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		alg := filepath.Base(filepath.Dir(filepath.Dir(path)))
		if alg != "sha256" {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h := sha256.New()
		io.Copy(h, f)
		if hex.EncodeToString(h.Sum(nil)) != e.Name() {
			t.Fatalf("blob file %s does not hold its content", path)
		}
		n++
		return nil
	})
	if n == 0 {
		t.Fatal("no blob files found")
	}
}

// TestGCCommand runs `xloud-image gc` against a running server (through its admin socket)
// and against a stopped one (opening the store itself), with blobs in the data directory
// and in S3 (where the bucket is listed afterwards: exactly the referenced objects remain).
func TestGCCommand(t *testing.T) {
	for _, blobs := range []string{"files", "s3"} {
		t.Run(blobs, func(t *testing.T) {
			var storeArgs []string
			var storeURL string
			if blobs == "s3" {
				s3 := testenv.StartS3(t)
				storeURL = s3.URL(s3.Bucket("xloud"), "blobs")
				storeArgs = []string{"--store", "s3=" + storeURL}
			}
			testGCCommand(t, storeArgs, storeURL)
		})
	}
}

func testGCCommand(t *testing.T, storeArgs []string, storeURL string) {
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: storeArgs})
	c := &client{t: t, base: srv.URL()}
	p, err := c.pushImage("gc/repo", "kept", 1000)
	if err != nil {
		t.Fatal(err)
	}
	loose, err := c.pushBlob("gc/repo", []byte("nobody references me"))
	if err != nil {
		t.Fatal(err)
	}
	gc := func(args ...string) map[string]any {
		t.Helper()
		args = append(append([]string{"gc", "--data-dir", srv.DataDir}, storeArgs...), args...)
		out, err := exec.Command(testenv.Binary(t), args...).Output()
		if err != nil {
			t.Fatalf("gc %v: %v", args, err)
		}
		var rep map[string]any
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("gc output %s: %v", out, err)
		}
		return rep
	}
	// Default grace (1h) spares the fresh blob.
	if rep := gc(); len(rep["blobs"].([]any)) != 0 {
		t.Fatalf("gc within grace removed %v", rep["blobs"])
	}
	if rep := gc("--grace", "0s", "--dry-run"); len(rep["blobs"].([]any)) != 1 || rep["dry_run"] != true {
		t.Fatalf("dry run: %v", rep)
	}
	c.must(200, "HEAD", "/v2/gc/repo/blobs/"+loose.String(), nil)
	rep := gc("--grace", "0s")
	if blobs := rep["blobs"].([]any); len(blobs) != 1 || blobs[0] != loose.String() {
		t.Fatalf("gc removed %v, want [%s]", blobs, loose)
	}
	c.must(404, "HEAD", "/v2/gc/repo/blobs/"+loose.String(), nil)
	c.checkPushed(p)
	if storeURL != "" {
		b, err := storage.OpenS3(storeURL)
		if err != nil {
			t.Fatal(err)
		}
		var objects []storage.Entry
		if err := b.Walk(context.Background(), func(e storage.Entry) error { objects = append(objects, e); return nil }); err != nil {
			t.Fatal(err)
		}
		// The config, the layer and the manifest; no staging.
		if len(objects) != 3 {
			t.Fatalf("bucket after gc: %+v; want the 3 referenced objects", objects)
		}
		for _, o := range objects {
			if o.Key == "" {
				t.Fatalf("staging left in the bucket: %+v", o)
			}
		}
	}

	// With the server stopped, gc opens the store itself.
	srv.Stop()
	if rep := gc("--grace", "0s"); len(rep["blobs"].([]any)) != 0 {
		t.Fatalf("offline gc removed referenced blobs: %v", rep)
	}
	srv.Start()
	c.base = srv.URL()
	c.checkPushed(p)
}
