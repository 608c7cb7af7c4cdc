package imageapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// node is one live server of a two-node deployment, called with a token.
type node struct {
	t   *testing.T
	srv *testenv.Server
}

func (n node) call(token, method, path string, body []byte, hdr ...string) (int, []byte) {
	n.t.Helper()
	req, _ := http.NewRequest(method, "http://"+n.srv.APIAddr+path, bytes.NewReader(body))
	req.Header.Set("X-Auth-Token", token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// cached lists the image ids in the node's cache and queue.
func (n node) cached(token string) ([]string, []string) {
	n.t.Helper()
	status, b := n.call(token, "GET", "/v2/cache", nil)
	var st struct {
		Cached []struct {
			ImageID string `json:"image_id"`
		} `json:"cached_images"`
		Queued []string `json:"queued_images"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &st) != nil {
		n.t.Fatalf("GET /v2/cache on %s: %d %s", n.srv.APIAddr, status, b)
	}
	var ids []string
	for _, c := range st.Cached {
		ids = append(ids, c.ImageID)
	}
	return ids, st.Queued
}

func (n node) waitCached(token, id string) {
	n.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if ids, _ := n.cached(token); slices.Contains(ids, id) {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s never cached %s", n.srv.APIAddr, id)
		}
	}
}

// TestCacheTwoNodes is tempest's test_remote_and_self_cache (tempest 43; Debian's 33 lacks
// it) on two servers over one Redis and one bucket, each with its own --cache-dir: the cache
// API answers per node, and clearing one node's cache leaves the other's.
func TestCacheTwoNodes(t *testing.T) {
	t.Parallel()
	redisURL := testenv.StartRedis(t)
	s3 := testenv.StartS3(t)
	store := "s3=" + s3.URL(s3.Bucket("images"), "")
	start := func(name string) node {
		srv := testenv.StartServer(t, testenv.ServerOptions{RedisURL: redisURL, Args: []string{"--auth", "embedded",
			"--admin-password", "nodes-admin-pw", "--store", store, "--cache-dir", filepath.Join(t.TempDir(), name)}})
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s log:\n%s", name, srv.Log())
			}
		})
		return node{t, srv}
	}
	local, remote := start("local"), start("remote")
	idc := testenv.AdminIdentity(t, "http://"+local.srv.APIAddr, nil, "nodes-admin-pw")
	demo := idc.Project(t, "demo")
	idc.User(t, demo, "alice", "alice-pw", "member")
	admin := idc.Token
	alice, err := idc.Login("alice", "alice-pw", "demo")
	if err != nil {
		t.Fatal(err)
	}

	for _, n := range []node{local, remote} {
		if ids, queued := n.cached(admin); len(ids) != 0 || len(queued) != 0 {
			t.Fatalf("fresh cache of %s: %v %v", n.srv.APIAddr, ids, queued)
		}
	}
	status, b := local.call(alice, "POST", "/v2/images", []byte(`{"name":"first","container_format":"bare","disk_format":"raw","visibility":"private"}`),
		"Content-Type", "application/json")
	var img struct{ ID string }
	if status != http.StatusCreated || json.Unmarshal(b, &img) != nil {
		t.Fatalf("create: %d %s", status, b)
	}
	if status, b := local.call(alice, "PUT", "/v2/images/"+img.ID+"/file", rawImage(1<<20), "Content-Type", "application/octet-stream"); status != http.StatusNoContent {
		t.Fatalf("upload: %d %s", status, b)
	}

	// Queued on the local node: cached there, nothing on the remote one.
	if status, b := local.call(admin, "PUT", "/v2/cache/"+img.ID, nil); status != http.StatusAccepted {
		t.Fatalf("queue on local: %d %s", status, b)
	}
	local.waitCached(admin, img.ID)
	if ids, queued := remote.cached(admin); len(ids) != 0 || len(queued) != 0 {
		t.Fatalf("the remote node lists the local node's cache: %v %v", ids, queued)
	}
	// Cached on the remote node too; clearing it leaves the local entry.
	if status, b := remote.call(admin, "PUT", "/v2/cache/"+img.ID, nil); status != http.StatusAccepted {
		t.Fatalf("queue on remote: %d %s", status, b)
	}
	remote.waitCached(admin, img.ID)
	if status, b := remote.call(admin, "DELETE", "/v2/cache", nil); status != http.StatusNoContent {
		t.Fatalf("clear remote: %d %s", status, b)
	}
	if ids, queued := remote.cached(admin); len(ids) != 0 || len(queued) != 0 {
		t.Fatalf("remote after clear: %v %v", ids, queued)
	}
	if ids, _ := local.cached(admin); !slices.Equal(ids, []string{img.ID}) {
		t.Fatalf("clearing the remote node's cache changed the local one: %v", ids)
	}
	if status, b := local.call(admin, "DELETE", "/v2/cache", nil); status != http.StatusNoContent {
		t.Fatalf("clear local: %d %s", status, b)
	}
	if ids, queued := local.cached(admin); len(ids) != 0 || len(queued) != 0 {
		t.Fatalf("local after clear: %v %v", ids, queued)
	}
}
