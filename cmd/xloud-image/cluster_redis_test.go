package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/internal/testenv"
)

// waitReady waits until every node's /readyz answers want.
func waitReady(t *testing.T, c *testenv.Cluster, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, n := range c.Nodes {
		for {
			resp, _, err := node(t, n, "").do("GET", "/readyz", nil)
			if err == nil && resp.StatusCode == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/readyz did not answer %d within %s (%v %v)", n.RegistryAddr, want, within, resp, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// sessionAt asks n where upload loc stands (the end of its Range, exclusive).
func sessionAt(t *testing.T, n *testenv.Server, loc string) int {
	t.Helper()
	resp := node(t, n, "").must(204, "GET", loc, nil)
	r := resp.Header.Get("Range")
	if r == "" {
		return 0
	}
	last, err := strconv.Atoi(strings.TrimPrefix(r, "0-"))
	if err != nil {
		t.Fatalf("Range %q", r)
	}
	return last + 1
}

// inFlight streams full[from:] into session loc on n slowly, in the background; the result
// is its status and OCI error code (0 when the connection failed).
// pushAcrossOutage pushes an image through node A (acknowledged before the outage), then
// starts a 24 MiB upload under prefix/inflight on B, sends its first 6 MiB through C and
// streams the rest slowly through A: the caller breaks the metadata store while that last
// chunk is on the wire and reads its answer from res.
func pushAcrossOutage(t *testing.T, c *testenv.Cluster, prefix string) (acked pushed, repo, loc string, full []byte, res <-chan [2]string) {
	t.Helper()
	a, b, cc := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	acked, err := node(t, a, "").pushImage(prefix+"/acked", "v1", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	repo = prefix + "/inflight"
	full = randomBytes(24 << 20)
	resp := node(t, b, "").must(202, "POST", "/v2/"+repo+"/blobs/uploads/", nil)
	loc = strings.TrimPrefix(resp.Header.Get("Location"), b.URL())
	node(t, cc, "").must(202, "PATCH", loc, full[:6<<20], "Content-Range", fmt.Sprintf("0-%d", 6<<20-1))
	res = inFlight(t, a, loc, full, 6<<20)
	time.Sleep(300 * time.Millisecond)
	return acked, repo, loc, full, res
}

func inFlight(t *testing.T, n *testenv.Server, loc string, full []byte, from int) <-chan [2]string {
	out := make(chan [2]string, 1)
	go func() {
		resp, b, err := node(t, n, "").do("PATCH", loc, slowReader{bytes.NewReader(full[from:]), 2 * time.Millisecond},
			"Content-Range", fmt.Sprintf("%d-%d", from, len(full)-1))
		if err != nil {
			out <- [2]string{"0", err.Error()}
			return
		}
		out <- [2]string{strconv.Itoa(resp.StatusCode), string(b)}
	}()
	return out
}

// finish resumes session loc on n from where the cluster says it stands and closes it;
// the blob must then read back exactly from every node.
func finish(t *testing.T, c *testenv.Cluster, n *testenv.Server, repo, loc string, full []byte) {
	t.Helper()
	at := sessionAt(t, n, loc)
	d := digest.FromBytes(full)
	if at == len(full) {
		node(t, n, "").must(201, "PUT", loc+"?digest="+d.String(), nil)
	} else {
		node(t, n, "").must(201, "PUT", loc+"?digest="+d.String(), full[at:], "Content-Range", fmt.Sprintf("%d-%d", at, len(full)-1))
	}
	for i, x := range c.Nodes {
		if _, b, err := node(t, x, "").do("GET", "/v2/"+repo+"/blobs/"+d.String(), nil); err != nil || !bytes.Equal(b, full) {
			t.Fatalf("node %d: resumed blob differs (%d bytes, %v)", i, len(b), err)
		}
	}
}

// TestClusterRedisDownAndRestart: Redis (AOF, fsync always) is killed while a chunk streams
// in: the chunk gets 503 UNAVAILABLE; while it is down every request on every node answers
// 503 in its door's format and /readyz fails (/healthz, liveness, does not); once Redis is
// back the nodes recover by themselves, every acknowledged push is intact, and the
// interrupted session resumes from its last acknowledged byte.
func TestClusterRedisDownAndRestart(t *testing.T) {
	rs := testenv.StartRedisServer(t, testenv.RedisOptions{AOF: true})
	c := testenv.StartCluster(t, 3, rs.URL())
	b, cc := c.Nodes[1], c.Nodes[2]
	acked, repo, loc, full, res := pushAcrossOutage(t, c, "redis")
	rs.Stop()
	r := <-res
	if r[0] != "503" || !strings.Contains(r[1], `"UNAVAILABLE"`) {
		t.Fatalf("chunk streaming when Redis died: %s %s; want 503 UNAVAILABLE (retryable)", r[0], r[1])
	}

	waitReady(t, c, 503, 5*time.Second)
	for i, n := range c.Nodes {
		nc := node(t, n, "")
		for _, path := range []string{"/v2/", "/v2/redis/acked/manifests/v1", "/v2/redis/acked/tags/list"} {
			resp, body, err := nc.do("GET", path, nil)
			if err != nil || resp.StatusCode != 503 || errorCode(t, body) != "UNAVAILABLE" {
				t.Fatalf("node %d GET %s with Redis down: %v %v %s", i, path, err, resp, body)
			}
		}
		resp, body, _ := nc.do("POST", "/v2/redis/new/blobs/uploads/", nil)
		if resp.StatusCode != 503 || errorCode(t, body) != "UNAVAILABLE" {
			t.Fatalf("node %d: push with Redis down: %d %s", i, resp.StatusCode, body)
		}
		api := &client{t: t, base: "http://" + n.APIAddr}
		for _, path := range []string{"/v2/images", "/v2/schemas/image"} {
			resp, body, err := api.do("GET", path, nil, "Accept", "application/json")
			if err != nil || resp.StatusCode != 503 || !bytes.Contains(body, []byte(`"title": "Service Unavailable"`)) && !bytes.Contains(body, []byte(`"title":"Service Unavailable"`)) {
				t.Fatalf("node %d Image API GET %s with Redis down: %v %v %s", i, path, err, resp, body)
			}
		}
		resp, body, _ = nc.do("GET", "/image/v2/images", nil)
		if resp.StatusCode != 503 || !bytes.Contains(body, []byte("503 Service Unavailable")) {
			t.Fatalf("node %d /image/v2/images with Redis down: %d %s", i, resp.StatusCode, body)
		}
		resp, _, _ = api.do("POST", "/identity/v3/auth/tokens", strings.NewReader(`{}`), "Content-Type", "application/json")
		if resp.StatusCode != 503 {
			t.Fatalf("node %d identity with Redis down: %d", i, resp.StatusCode)
		}
		resp, body, _ = nc.do("GET", "/token?service=xloud-image&scope=repository:redis/acked:pull", nil)
		if resp.StatusCode != 503 || errorCode(t, body) != "UNAVAILABLE" {
			t.Fatalf("node %d token endpoint with Redis down: %d %s", i, resp.StatusCode, body)
		}
		if resp, _, _ := nc.do("GET", "/healthz", nil); resp.StatusCode != 200 {
			t.Fatalf("node %d /healthz with Redis down: %d (liveness must not depend on Redis)", i, resp.StatusCode)
		}
	}

	rs.Start()
	waitReady(t, c, 200, 10*time.Second)
	for _, n := range c.Nodes {
		node(t, n, "").checkPushed(acked)
	}
	d := digest.FromBytes(full)
	node(t, cc, "").must(404, "HEAD", "/v2/"+repo+"/blobs/"+d.String(), nil) // nothing half-visible
	finish(t, c, cc, repo, loc, full)
	if _, err := node(t, b, "").pushImage("redis/after", "v1", 1<<20); err != nil {
		t.Fatalf("push after recovery: %v", err)
	}
}

// TestClusterSentinelFailover: the nodes reach Redis through Sentinel
// (redis+sentinel://…?wait_replicas=1); the primary is killed, with no grace for the replica
// to catch up, while a chunk streams in. The chunk completes
// or gets a retryable error, Sentinel promotes the replica, the nodes follow by themselves,
// every acknowledged push is intact and the session resumes and completes.
func TestClusterSentinelFailover(t *testing.T) {
	primary := testenv.StartRedisServer(t, testenv.RedisOptions{AOF: true})
	replica := testenv.StartRedisServer(t, testenv.RedisOptions{AOF: true, ReplicaOf: primary.Addr()})
	testenv.WaitReplicaSynced(t, replica)
	sentinel := testenv.StartSentinel(t, primary.Addr(), "xloud")
	// Each write waits for the replica (WAIT), so what was acknowledged survives the primary.
	c := testenv.StartCluster(t, 3, sentinel.URL()+"?wait_replicas=1&wait_timeout=200ms")
	b, cc := c.Nodes[1], c.Nodes[2]
	acked, repo, loc, full, res := pushAcrossOutage(t, c, "sentinel")
	primary.Stop()
	killed := time.Now()
	r := <-res
	if r[0] != "202" && (r[0] != "503" || !strings.Contains(r[1], `"UNAVAILABLE"`)) {
		t.Fatalf("chunk streaming when the primary died: %s %s; want 202 or 503 UNAVAILABLE", r[0], r[1])
	}
	t.Logf("the chunk in flight got %s, %s after the primary died", r[0], time.Since(killed).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		addr, err := sentinel.PrimaryAddr(ctx)
		if err == nil && addr == replica.Addr() {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("sentinel did not promote the replica: %v %s", err, addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitReady(t, c, 200, 15*time.Second)
	for _, n := range c.Nodes {
		node(t, n, "").checkPushed(acked)
	}
	finish(t, c, b, repo, loc, full)
	if _, err := node(t, cc, "").pushImage("sentinel/after", "v1", 1<<20); err != nil {
		t.Fatalf("push after the failover: %v", err)
	}
}
