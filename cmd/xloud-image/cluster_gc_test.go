package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/redis/go-redis/v9"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestClusterKilledMidPatch: the node streaming a PATCH is SIGKILLed; the client asks
// another node where the session stands, resumes there and closes on a third; the blob is
// exact on every node and no staging is left in the bucket.
func TestClusterKilledMidPatch(t *testing.T) {
	c := testenv.StartCluster(t, 3, testenv.StartRedis(t))
	a, b, cc := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	repo := "kill/resume"
	full := randomBytes(40<<20 + 5)
	d := digest.FromBytes(full)
	resp := node(t, a, "").must(202, "POST", "/v2/"+repo+"/blobs/uploads/", nil)
	loc := strings.TrimPrefix(resp.Header.Get("Location"), a.URL())
	acked := 6 << 20
	node(t, a, "").must(202, "PATCH", loc, full[:acked], "Content-Range", fmt.Sprintf("0-%d", acked-1))
	done := make(chan struct{})
	go func() {
		defer close(done)
		node(t, b, "").do("PATCH", loc, slowReader{bytes.NewReader(full[acked:]), 2 * time.Millisecond},
			"Content-Range", fmt.Sprintf("%d-%d", acked, len(full)-1))
	}()
	time.Sleep(700 * time.Millisecond) // some parts of the dying chunk are in S3 by now
	b.Kill()
	<-done

	resp = node(t, cc, "").must(204, "GET", loc, nil)
	var last int
	if _, err := fmt.Sscanf(resp.Header.Get("Range"), "0-%d", &last); err != nil || last+1 < acked || last+1 >= len(full) {
		t.Fatalf("after B died, C says Range %q; want from 0 to at least the acknowledged %d", resp.Header.Get("Range"), acked)
	}
	t.Logf("B died with the session at %d bytes (acknowledged before: %d)", last+1, acked)
	node(t, a, "").must(404, "HEAD", "/v2/"+repo+"/blobs/"+d.String(), nil)
	node(t, cc, "").must(202, "PATCH", loc, full[last+1:len(full)-5], "Content-Range", fmt.Sprintf("%d-%d", last+1, len(full)-6))
	node(t, a, "").must(201, "PUT", loc+"?digest="+d.String(), full[len(full)-5:], "Content-Range", fmt.Sprintf("%d-%d", len(full)-5, len(full)-1))
	for i, n := range []*testenv.Server{a, cc} {
		if _, got, err := node(t, n, "").do("GET", "/v2/"+repo+"/blobs/"+d.String(), nil); err != nil || !bytes.Equal(got, full) {
			t.Fatalf("node %d: resumed blob differs (%d bytes, %v)", i, len(got), err)
		}
	}
	if st := staging(t, c.StoreURL); len(st) != 0 {
		t.Fatalf("staging left after the commit: %+v", st)
	}
}

// TestClusterGCStorm: four pushers re-push overlapping layers through changing nodes,
// re-tag, delete their previous manifests and leave loose blobs, while the background GC runs
// on whichever node holds its lock with a 2 s grace. Afterwards every tagged manifest pulls
// with correct digests from every node, and within two grace periods the bucket holds exactly
// the blobs the tagged manifests name.
func TestClusterGCStorm(t *testing.T) {
	const grace = 2 * time.Second
	redisURL := testenv.StartRedis(t)
	c := testenv.StartCluster(t, 3, redisURL, "--gc-interval", "250ms", "--gc-grace", grace.String())
	shared := make([][]byte, 4)
	for i := range shared {
		shared[i] = randomBytes(256<<10 + i)
	}
	type image struct {
		tag      string
		manifest []byte
		blobs    map[digest.Digest][]byte
	}
	var mu sync.Mutex
	final := map[string]image{}
	retries := 0
	stop := time.Now().Add(6 * time.Second)
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := fmt.Sprintf("storm/p%d", p)
			var prev digest.Digest
			for r := 0; time.Now().Before(stop); r++ {
				req := 0
				next := func() *client { req++; return node(t, c.Nodes[(p+r+req)%3], "") }
				cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","p":%d,"r":%d}`, p, r))
				layers := [][]byte{shared[r%4], shared[(r+p)%4], randomBytes(64 << 10)}
				img := image{tag: "latest", blobs: map[digest.Digest][]byte{}}
				failed := false
				for _, blob := range append([][]byte{cfg}, layers...) {
					d, err := next().pushBlob(repo, blob)
					if err != nil {
						failed = true
						break
					}
					img.blobs[d] = blob
				}
				next().pushBlob(repo, randomBytes(32<<10)) // loose: nothing will ever hold it
				if !failed {
					img.manifest = imageManifest(cfg, layers)
					resp, body, err := next().do("PUT", "/v2/"+repo+"/manifests/latest", bytes.NewReader(img.manifest),
						"Content-Type", "application/vnd.oci.image.manifest.v1+json")
					failed = err != nil || resp.StatusCode != 201
					if failed && err == nil && resp.StatusCode != 400 {
						t.Errorf("manifest PUT: %d %s (only a blob collected meanwhile may refuse it)", resp.StatusCode, body)
					}
				}
				if failed {
					mu.Lock()
					retries++
					mu.Unlock()
					continue
				}
				md := digest.FromBytes(img.manifest)
				if prev != "" && prev != md {
					next().must(202, "DELETE", "/v2/"+repo+"/manifests/"+prev.String(), nil)
				}
				prev = md
				mu.Lock()
				final[repo] = img
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("storm over: %d images, %d pushes retried", len(final), retries)

	want := map[string]bool{}
	for _, img := range final {
		want[digest.FromBytes(img.manifest).Encoded()] = true
		for d := range img.blobs {
			want[d.Encoded()] = true
		}
	}
	deadline := time.Now().Add(2 * grace)
	var extra, missing []string
	for first := true; ; first = false {
		got := bucketDigests(t, c)
		if first {
			t.Logf("at the storm's end the bucket holds %d blobs; the tagged images name %d", len(got), len(want))
		}
		extra, missing = extra[:0], missing[:0]
		for d := range got {
			if !want[d] {
				extra = append(extra, d)
			}
		}
		for d := range want {
			if !got[d] {
				missing = append(missing, d)
			}
		}
		if len(missing) > 0 {
			t.Fatalf("blobs of tagged images missing from the bucket: %v", missing)
		}
		if len(extra) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		t.Fatalf("%d unreferenced blobs still in the bucket two grace periods after the storm: %v", len(extra), extra[:min(len(extra), 10)])
	}
	operatorGC(t, c, redisURL)
	for repo, img := range final {
		for i, n := range c.Nodes {
			nc := node(t, n, "")
			if _, b, err := nc.do("GET", "/v2/"+repo+"/manifests/latest", nil); err != nil || !bytes.Equal(b, img.manifest) {
				t.Fatalf("node %d: %s:latest differs: %v", i, repo, err)
			}
			for d := range img.blobs {
				if _, b, err := nc.do("GET", "/v2/"+repo+"/blobs/"+d.String(), nil); err != nil || digest.FromBytes(b) != d {
					t.Fatalf("node %d: blob %s of %s: %v", i, d, repo, err)
				}
			}
		}
	}
}

// gcCommand runs `xloud-image gc` against the cluster through node's data directory.
func gcCommand(t *testing.T, c *testenv.Cluster, n *testenv.Server, redisURL string, args ...string) (string, string, int) {
	return run(t, nil, append([]string{"gc", "--data-dir", n.DataDir, "--redis-url", redisURL, "--store", "s3=" + c.StoreURL}, args...)...)
}

// operatorGC: `xloud-image gc` is refused while another process collects (naming it), and
// otherwise reports through any node; after the storm settled there is nothing to collect.
func operatorGC(t *testing.T, c *testenv.Cluster, redisURL string) {
	t.Helper()
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	key := "xloud:k:lock:gc-run"
	held := fmt.Sprintf(`{"holder":"elsewhere","until":%d}`, time.Now().Add(time.Hour).UnixNano())
	if err := rc.Set(context.Background(), key, held, 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := gcCommand(t, c, c.Nodes[1], redisURL, "--dry-run")
	if code == 0 || !strings.Contains(errOut, "running on node elsewhere") {
		t.Fatalf("gc while another process collects: exit %d, %s", code, errOut)
	}
	rc.Del(context.Background(), key)
	var out string
	for range 20 {
		out, errOut, code = gcCommand(t, c, c.Nodes[1], redisURL, "--dry-run", "--grace", "0s")
		if code == 0 || !strings.Contains(errOut, "running on node") {
			break // not the background round of a node
		}
		time.Sleep(100 * time.Millisecond)
	}
	var rep struct {
		DryRun bool     `json:"dry_run"`
		Blobs  []string `json:"blobs"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || !rep.DryRun || len(rep.Blobs) != 0 {
		t.Fatalf("gc --dry-run after the storm: exit %d %s %s", code, out, errOut)
	}
}

// imageManifest is an OCI image manifest of cfg and layers.
func imageManifest(cfg []byte, layers [][]byte) []byte {
	var ls []string
	for _, l := range layers {
		ls = append(ls, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}`, digest.FromBytes(l), len(l)))
	}
	return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[%s]}`,
		digest.FromBytes(cfg), len(cfg), strings.Join(ls, ",")))
}

// bucketDigests lists the committed blobs in the cluster's bucket by the sha256 of their
// bytes (committed objects live under data/; upload staging is not a blob).
func bucketDigests(t *testing.T, c *testenv.Cluster) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, key := range c.S3.Objects(c.Bucket) {
		if !strings.Contains(key, "/data/") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(c.S3.Root, c.Bucket, key))
		if os.IsNotExist(err) {
			continue // removed while listed
		}
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		out[hex.EncodeToString(sum[:])] = true
	}
	return out
}

// TestBackgroundGCEmbedded: the automatic GC also runs on the embedded store (one node): a
// blob no manifest names is gone, file and all, within two grace periods; a tagged image
// stays whole.
func TestBackgroundGCEmbedded(t *testing.T) {
	const grace = time.Second
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--gc-interval", "200ms", "--gc-grace", grace.String()}})
	cl := node(t, srv, "")
	kept, err := cl.pushImage("solo/kept", "v1", 128<<10)
	if err != nil {
		t.Fatal(err)
	}
	loose, err := cl.pushBlob("solo/loose", randomBytes(96<<10))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(srv.DataDir, "blobs", "sha256", loose.Encoded()[:2], loose.Encoded())
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("pushed blob not on disk: %v", err)
	}
	deadline := time.Now().Add(2 * grace)
	for {
		_, err := os.Stat(file)
		if os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unreferenced blob still on disk two grace periods after its push (%v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cl.must(404, "HEAD", "/v2/solo/loose/blobs/"+loose.String(), nil)
	cl.checkPushed(kept)
}
