package identityapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage/meta"
)

const adminPassword = "admin-secret"

// testAPI is the identity API over a real bbolt store, bootstrapped with the admin user,
// served by httptest. Its clock can be moved forward.
type testAPI struct {
	t     *testing.T
	srv   *httptest.Server
	id    *auth.Identity
	clock atomic.Int64 // offset added to the real time, in nanoseconds

	adminToken string
	adminID    string
	adminProj  string
}

func newTestAPI(t *testing.T, opt Options) *testAPI {
	t.Helper()
	m, err := meta.OpenBolt(filepath.Join(t.TempDir(), "meta.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ta := &testAPI{t: t, id: auth.NewIdentity(m)}
	ta.id.Now = func() time.Time { return time.Now().Add(time.Duration(ta.clock.Load())) }
	if _, err := ta.id.Bootstrap(context.Background(), adminPassword); err != nil {
		t.Fatal(err)
	}
	opt.Identity = ta.id
	if opt.Throttle != nil && opt.Throttle.Store == nil {
		opt.Throttle.Store = m
	}
	ta.srv = httptest.NewServer(New(opt))
	t.Cleanup(func() { ta.srv.Close(); m.Close() })
	admin, err := ta.id.UserByName(context.Background(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	ta.adminID, ta.adminProj = admin.ID, admin.DefaultProjectID
	ta.adminToken = ta.token("admin", adminPassword, "admin")
	return ta
}

// advance moves the identity's clock forward.
func (ta *testAPI) advance(d time.Duration) { ta.clock.Add(int64(d)) }

// passwordAuth is the body keystoneauth sends for a password, scoped to project by name
// when project is not empty.
func passwordAuth(user, password, project string) string {
	scope := ""
	if project != "" {
		scope = `,"scope":{"project":{"name":` + quote(project) + `,"domain":{"name":"Default"}}}`
	}
	return `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":` + quote(user) +
		`,"domain":{"name":"Default"},"password":` + quote(password) + `}}}` + scope + `}}`
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// token issues a token for user with password, scoped to project (by name) when not empty.
func (ta *testAPI) token(user, password, project string) string {
	ta.t.Helper()
	resp, body := ta.do("POST", "/identity/v3/auth/tokens", "", passwordAuth(user, password, project))
	if resp.StatusCode != http.StatusCreated {
		ta.t.Fatalf("token for %s: %d %s", user, resp.StatusCode, body)
	}
	return resp.Header.Get("X-Subject-Token")
}

// do sends a request with an optional X-Auth-Token and JSON body; header holds extra
// name, value pairs.
func (ta *testAPI) do(method, path, token, body string, header ...string) (*http.Response, []byte) {
	ta.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ta.srv.URL+path, rd)
	if err != nil {
		ta.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ta.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// call is one row of a request table.
type call struct {
	name   string
	method string
	path   string
	token  string
	body   string
	header []string
	status int
	// want are substrings the body must contain.
	want []string
}

// run sends every call and checks its status, body substrings and, for errors, Keystone's
// error body.
func (ta *testAPI) run(calls []call) {
	ta.t.Helper()
	for _, c := range calls {
		ta.t.Run(c.name, func(t *testing.T) {
			resp, body := ta.do(c.method, c.path, c.token, c.body, c.header...)
			if resp.StatusCode != c.status {
				t.Fatalf("%s %s: status %d, want %d; body %s", c.method, c.path, resp.StatusCode, c.status, body)
			}
			for _, w := range c.want {
				if !strings.Contains(string(body), w) {
					t.Errorf("%s %s: body lacks %q: %s", c.method, c.path, w, body)
				}
			}
			if c.status >= 400 && c.method != http.MethodHead {
				checkErrorBody(t, resp, body)
			}
		})
	}
}

// checkErrorBody checks Keystone's error body: code equal to the status, its title, a message.
func checkErrorBody(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	var e struct {
		Error struct {
			Code    int    `json:"code"`
			Title   string `json:"title"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, body)
	}
	if e.Error.Code != resp.StatusCode || e.Error.Title != http.StatusText(resp.StatusCode) || e.Error.Message == "" {
		t.Errorf("error body %s for status %d", body, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q", ct)
	}
	if resp.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Keystone uri=") {
		t.Errorf("401 without Keystone WWW-Authenticate: %q", resp.Header.Get("WWW-Authenticate"))
	}
}

// decodeJSON parses body into v or fails the test.
func decodeJSON(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

// mustCreateProject makes a project through the store.
func (ta *testAPI) mustCreateProject(name string) auth.Project {
	ta.t.Helper()
	p, err := ta.id.CreateProject(context.Background(), auth.Project{Name: name, Enabled: true})
	if err != nil {
		ta.t.Fatal(err)
	}
	return p
}

// mustCreateUser makes a user with password holding role on project (none when empty).
func (ta *testAPI) mustCreateUser(name, password string, project auth.Project, role auth.Role) auth.User {
	ta.t.Helper()
	ctx := context.Background()
	u, err := ta.id.CreateUser(ctx, auth.User{Name: name, Enabled: true, DefaultProjectID: project.ID}, password)
	if err != nil {
		ta.t.Fatal(err)
	}
	if role != "" {
		if err := ta.id.Grant(ctx, u.ID, project.ID, role); err != nil {
			ta.t.Fatal(err)
		}
	}
	return u
}
