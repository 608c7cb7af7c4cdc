package imageapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/imageapi"
	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage"
)

var ctx = context.Background()

// env is an Image API over a real bbolt store and the embedded identity, with projects a and
// b and a token for each user: admin (admin project), member-a, reader-a, member-b.
type env struct {
	t       *testing.T
	srv     *httptest.Server
	cat     *catalog.Catalog
	store   *storage.Store
	token   map[string]string
	project map[string]string
	ident   *auth.Identity
}

// newEnv is an Image API over a fresh store with projects admin, a and b and their users;
// configure adjusts the policy (property protections) before the catalog takes it.
func newEnv(t *testing.T, configure ...func(*auth.Policy)) *env {
	t.Helper()
	return newEnvOver(t, testenv.OpenStore(t, ""), configure...)
}

// newEnvOver is newEnv over a given store.
func newEnvOver(t *testing.T, store *storage.Store, configure ...func(*auth.Policy)) *env {
	t.Helper()
	id := auth.NewIdentity(store.Meta())
	e := &env{t: t, store: store, token: map[string]string{}, project: map[string]string{}, ident: id}
	for _, p := range []string{"admin", "a", "b"} {
		proj, err := id.CreateProject(ctx, auth.Project{Name: p, Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		e.project[p] = proj.ID
	}
	for _, u := range []struct {
		name, project string
		role          auth.Role
	}{{"admin", "admin", auth.RoleAdmin}, {"member-a", "a", auth.RoleMember}, {"reader-a", "a", auth.RoleReader}, {"member-b", "b", auth.RoleMember}} {
		user, err := id.CreateUser(ctx, auth.User{Name: u.name, Enabled: true}, "") // tokens only: no password to hash
		if err != nil {
			t.Fatal(err)
		}
		if err := id.Grant(ctx, user.ID, e.project[u.project], u.role); err != nil {
			t.Fatal(err)
		}
		e.issue(id, u.name, user, e.project[u.project])
	}
	policy := &auth.Policy{Directory: id}
	for _, f := range configure {
		f(policy)
	}
	e.cat = catalog.New(store, policy)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	e.cat.Now = func() time.Time { // a second per call: creation order is list order
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}
	h := imageapi.New(e.cat, &auth.Authenticator{Passwords: id, Tokens: id}, imageapi.Options{Web: &catalog.WebDownloader{AllowedHosts: []string{"127.0.0.1"}},
		RegistryPort: "5000"})
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) issue(id *auth.Identity, name string, u auth.User, project string) {
	_, secret, err := id.IssueToken(ctx, u, project, []string{"password"}, time.Time{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.token[name] = secret
}

// resp is an answer, read whole.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object (%d): %q", r.status, r.body)
	}
	return m
}

// do sends a request as who ("" for no token). body is sent as is when []byte or string,
// else as JSON. hdr holds header name/value pairs.
func (e *env) do(who, method, path string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if who != "" {
		req.Header.Set("X-Auth-Token", e.token[who])
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

// create makes an image as who and returns its id.
func (e *env) create(who string, fields map[string]any) string {
	e.t.Helper()
	r := e.do(who, "POST", "/v2/images", fields)
	if r.status != http.StatusCreated {
		e.t.Fatalf("create %v: %d %s", fields, r.status, r.body)
	}
	return r.json(e.t)["id"].(string)
}

// upload puts data into image id as who.
func (e *env) upload(who, id string, data []byte) {
	e.t.Helper()
	r := e.do(who, "PUT", "/v2/images/"+id+"/file", data, "Content-Type", "application/octet-stream")
	if r.status != http.StatusNoContent {
		e.t.Fatalf("upload: %d %s", r.status, r.body)
	}
}

// show returns image id as admin sees it.
func (e *env) show(id string) map[string]any {
	e.t.Helper()
	r := e.do("admin", "GET", "/v2/images/"+id, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("show %s: %d %s", id, r.status, r.body)
	}
	return r.json(e.t)
}

// patch sends a v2.1 JSON-patch as who.
func (e *env) patch(who, id string, ops ...map[string]any) resp {
	e.t.Helper()
	b, _ := json.Marshal(ops)
	return e.do(who, "PATCH", "/v2/images/"+id, b, "Content-Type", "application/openstack-images-v2.1-json-patch")
}

// waitStatus polls image id until it has one of statuses.
func (e *env) waitStatus(id string, statuses ...string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		img := e.show(id)
		for _, s := range statuses {
			if img["status"] == s {
				return img
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("image %s stays %v, want %v", id, img["status"], statuses)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// names lists the names of a list answer.
func names(t *testing.T, r resp) []string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	out := []string{}
	for _, img := range r.json(t)["images"].([]any) {
		n, _ := img.(map[string]any)["name"].(string)
		out = append(out, n)
	}
	return out
}

func rawImage(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}
