package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/redis/go-redis/v9"

	"github.com/xloud/xloud-image/internal/testenv"
)

// The cluster tests: three `xloud-image serve` processes over one redis-server and one
// versitygw bucket, each request of a flow sent to a different node.

// node is a client of one node's registry port carrying a shared credential.
func node(t *testing.T, s *testenv.Server, token string) *client {
	return &client{t: t, base: s.URL(), auth: token}
}

// registryToken asks srv's token endpoint for a bearer token with the admin's credentials.
func registryToken(t *testing.T, srv *testenv.Server, scope string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL()+"/token?service=xloud-image&scope="+scope, nil)
	req.SetBasicAuth("admin", "cluster-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != 200 || tr.Token == "" {
		t.Fatalf("token from %s: %d %v", srv.RegistryAddr, resp.StatusCode, err)
	}
	return tr.Token
}

// keyID is the "kid" of a registry token's header.
func keyID(t *testing.T, token string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	var h struct{ Kid string }
	if err != nil || json.Unmarshal(b, &h) != nil {
		t.Fatalf("token header: %v", err)
	}
	return h.Kid
}

// TestClusterAnyNode: a chunked upload started on A, continued on B and closed on C pulls
// byte-identical from every node; registry tokens (across a key rotation) and Keystone-style
// tokens from one node work on the others; the cluster chores run on one node at a time and
// move to another when it dies; every node reports its own metrics.
func TestClusterAnyNode(t *testing.T) {
	rs := testenv.StartRedisServer(t, testenv.RedisOptions{})
	c := testenv.StartCluster(t, 3, rs.URL(), "--auth", "embedded", "--admin-password", "cluster-pw",
		"--token-key-rotation", "3s", "--gc-interval", "500ms", "--gc-grace", "1h")
	a, b, cc := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	repo := "admin/cluster/any"
	tok := registryToken(t, a, "repository:"+repo+":push,pull")

	full := randomBytes(13<<20 + 7)
	d := digest.FromBytes(full)
	resp := node(t, a, tok).must(202, "POST", "/v2/"+repo+"/blobs/uploads/", nil)
	loc := resp.Header.Get("Location")
	loc = loc[strings.Index(loc, "/v2/"):]
	node(t, b, tok).must(202, "PATCH", loc, full[:6<<20], "Content-Range", fmt.Sprintf("0-%d", 6<<20-1))
	r := node(t, cc, tok).must(204, "GET", loc, nil)
	if r.Header.Get("Range") != fmt.Sprintf("0-%d", 6<<20-1) {
		t.Fatalf("C sees the session at Range %q", r.Header.Get("Range"))
	}
	node(t, cc, tok).must(201, "PUT", loc+"?digest="+d.String(), full[6<<20:],
		"Content-Range", fmt.Sprintf("%d-%d", 6<<20, len(full)-1))
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	cd, err := node(t, b, tok).pushBlob(repo, cfg)
	if err != nil {
		t.Fatal(err)
	}
	man := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`, cd, len(cfg), d, len(full)))
	node(t, a, tok).must(201, "PUT", "/v2/"+repo+"/manifests/v1", man, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	for i, n := range c.Nodes {
		nc := node(t, n, tok)
		if _, got, err := nc.do("GET", "/v2/"+repo+"/manifests/v1", nil); err != nil || !bytes.Equal(got, man) {
			t.Fatalf("node %d: manifest differs: %v", i, err)
		}
		if _, got, err := nc.do("GET", "/v2/"+repo+"/blobs/"+d.String(), nil); err != nil || digest.FromBytes(got) != d {
			t.Fatalf("node %d: layer differs (%d bytes): %v", i, len(got), err)
		}
	}

	// Tokens: one issued by A before a key rotation and one by B after it verify on every
	// node; a token signed by a key no node made does not.
	time.Sleep(3500 * time.Millisecond)
	tok2 := registryToken(t, b, "repository:"+repo+":pull")
	if keyID(t, tok) == keyID(t, tok2) {
		t.Fatalf("no key rotation after --token-key-rotation: both tokens name key %s", keyID(t, tok))
	}
	for i, n := range c.Nodes {
		for _, tk := range []string{tok, tok2} {
			node(t, n, tk).must(200, "GET", "/v2/"+repo+"/manifests/v1", nil)
		}
		parts := strings.Split(tok2, ".")
		forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
		if resp, _, _ := node(t, n, forged).do("GET", "/v2/"+repo+"/manifests/v1", nil); resp.StatusCode != 401 {
			t.Fatalf("node %d accepted a forged token: %d", i, resp.StatusCode)
		}
	}
	ksToken := keystoneToken(t, a)
	for i, n := range c.Nodes {
		req, _ := http.NewRequest("GET", "http://"+n.APIAddr+"/v2/images", nil)
		req.Header.Set("X-Auth-Token", ksToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("node %d: Keystone token of node 0: %v %v", i, err, resp)
		}
		resp.Body.Close()
	}

	// Chores: one holder of the GC lock at a time, the same one while it lives; another
	// node takes over within the lock's life once it dies.
	rc := rs.Client()
	holder := func() string {
		b, err := rc.Get(context.Background(), "xloud:k:lock:gc").Bytes()
		if err == redis.Nil {
			return ""
		}
		var l struct{ Holder string }
		if err != nil || json.Unmarshal(b, &l) != nil {
			t.Fatalf("gc lock: %v %q", err, b)
		}
		return l.Holder
	}
	first := holder()
	for range 6 {
		time.Sleep(300 * time.Millisecond)
		if h := holder(); h != first || h == "" {
			t.Fatalf("gc lock moved from %q to %q while its holder lives", first, h)
		}
	}
	var dead *testenv.Server
	for _, n := range c.Nodes {
		if strings.Contains(n.Log(), first) {
			dead = n
		}
	}
	if dead == nil {
		t.Fatalf("no node logged the id %q that holds the gc lock", first)
	}
	dead.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for holder() == first && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if h := holder(); h == "" || h == first {
		t.Fatalf("the gc lock is held by %q after its holder %q died; want another node", h, first)
	}

	// Metrics, per node.
	for _, n := range c.Nodes {
		if n == dead {
			continue
		}
		_, m, err := (&client{t: t, base: n.URL()}).do("GET", "/metrics", nil)
		if err != nil || !bytes.Contains(m, []byte("xloud_gc_queue_length ")) || !bytes.Contains(m, []byte("xloud_node_upload_requests_in_flight 0")) {
			t.Fatalf("metrics of %s lack the cluster gauges: %v\n%s", n.RegistryAddr, err, m)
		}
	}
}

// keystoneToken signs the admin in on srv's identity API and returns the token.
func keystoneToken(t *testing.T, srv *testenv.Server) string {
	t.Helper()
	body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"cluster-pw"}}},` +
		`"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}`
	resp, err := http.Post("http://"+srv.APIAddr+"/identity/v3/auth/tokens", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 201 || resp.Header.Get("X-Subject-Token") == "" {
		t.Fatalf("keystone token: %d", resp.StatusCode)
	}
	return resp.Header.Get("X-Subject-Token")
}
