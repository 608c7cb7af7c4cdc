package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage/meta"
)

// secured is a registry with the embedded identity: projects a and b; users reader-a,
// member-a, member-b and the admin.
type secured struct {
	*testRegistry
	id      *auth.Identity
	signer  *auth.Signer
	catalog *catalog.Catalog
	policy  *auth.Policy
	users   map[string]string // name -> password
}

func newSecured(t *testing.T) *secured {
	t.Helper()
	store := testenv.OpenStore(t, "")
	ctx := context.Background()
	m := store.Meta()
	id := auth.NewIdentity(m)
	if _, err := id.Bootstrap(ctx, "admin-pw"); err != nil {
		t.Fatal(err)
	}
	signer, err := auth.NewSigner(ctx, m, "xloud-image")
	if err != nil {
		t.Fatal(err)
	}
	s := &secured{id: id, signer: signer, users: map[string]string{"admin": "admin-pw"}}
	projects := map[string]string{}
	for _, p := range []string{"a", "b"} {
		proj, err := id.CreateProject(ctx, auth.Project{Name: p, Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		projects[p] = proj.ID
	}
	for _, u := range []struct {
		name, project string
		role          auth.Role
	}{{"reader-a", "a", auth.RoleReader}, {"member-a", "a", auth.RoleMember}, {"member-b", "b", auth.RoleMember}} {
		user, err := id.CreateUser(ctx, auth.User{Name: u.name, Enabled: true}, u.name+"-pw")
		if err != nil {
			t.Fatal(err)
		}
		if err := id.Grant(ctx, user.ID, projects[u.project], u.role); err != nil {
			t.Fatal(err)
		}
		s.users[u.name] = u.name + "-pw"
	}
	policy := &auth.Policy{Directory: id, Content: catalog.NewFacts(store)}
	s.catalog = catalog.New(store, policy)
	s.policy = policy
	reg := New(store, Options{Access: &Access{
		Authenticator: &auth.Authenticator{Passwords: id, Tokens: id, Signer: signer},
		Policy:        policy,
		Service:       "xloud-image",
	}, Catalog: s.catalog})
	mux := http.NewServeMux()
	mux.Handle("/v2/", reg)
	mux.Handle("/token", reg.TokenHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.testRegistry = &testRegistry{t: t, srv: srv, store: store}
	return s
}

// as returns header pairs authenticating as user ("" = anonymous).
func (s *secured) as(user string) []string {
	if user == "" {
		return nil
	}
	cred := base64.StdEncoding.EncodeToString([]byte(user + ":" + s.users[user]))
	return []string{"Authorization", "Basic " + cred}
}

// seed pushes an image into a/app and b/app as admin, with a referrer on a/app.
func (s *secured) seed() (manifestA string) {
	admin := s.as("admin")
	for _, repo := range []string{"a/app", "b/app"} {
		cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
		s.pushBlobAs(repo, cfg, admin)
		layer := []byte("layer of " + repo)
		ld := s.pushBlobAs(repo, layer, admin)
		cd := s.pushBlobAs(repo, cfg, admin)
		mb := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`, cd, len(cfg), ld, len(layer)))
		resp, body := s.do("PUT", "/v2/"+repo+"/manifests/v1", mb, append(admin, "Content-Type", "application/vnd.oci.image.manifest.v1+json")...)
		s.expect(resp, body, 201, "")
		if repo == "a/app" {
			manifestA = resp.Header.Get("Docker-Content-Digest")
		}
	}
	return manifestA
}

func (s *secured) pushBlobAs(repo string, content []byte, hdr []string) string {
	s.t.Helper()
	resp, body := s.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, hdr...)
	s.expect(resp, body, 202, "")
	d := fmt.Sprintf("sha256:%x", sha256Sum(content))
	resp, body = s.do("PUT", resp.Header.Get("Location")+"?digest="+d, content, hdr...)
	s.expect(resp, body, 201, "")
	return d
}

// TestAccessMatrix asserts the exact status of every endpoint class for every kind of
// caller.
func TestAccessMatrix(t *testing.T) {
	s := newSecured(t)
	manifestA := s.seed()
	layerA := fmt.Sprintf("sha256:%x", sha256Sum([]byte("layer of a/app")))
	callers := []string{"", "reader-a", "member-a", "member-b", "admin"}
	type cell struct {
		name    string
		request func(user string) *http.Response
		want    []int // per caller, in the order above
	}
	req := func(method, path string, body []byte, extra ...string) func(string) *http.Response {
		return func(user string) *http.Response {
			resp, _ := s.do(method, path, body, append(s.as(user), extra...)...)
			return resp
		}
	}
	cells := []cell{
		{"version check", req("GET", "/v2/", nil), []int{401, 200, 200, 200, 200}},
		{"pull manifest", req("GET", "/v2/a/app/manifests/v1", nil), []int{401, 200, 200, 403, 200}},
		{"head blob", req("HEAD", "/v2/a/app/blobs/"+layerA, nil), []int{401, 200, 200, 403, 200}},
		{"pull missing repo of a", req("GET", "/v2/a/nothing/manifests/v1", nil), []int{401, 404, 404, 403, 404}},
		{"pull repo of unknown project", req("GET", "/v2/zz/app/manifests/v1", nil), []int{401, 403, 403, 403, 404}},
		{"tags", req("GET", "/v2/a/app/tags/list", nil), []int{401, 200, 200, 403, 200}},
		{"referrers", req("GET", "/v2/a/app/referrers/"+manifestA, nil), []int{401, 200, 200, 403, 200}},
		{"push start", req("POST", "/v2/a/app/blobs/uploads/", nil), []int{401, 403, 202, 403, 202}},
		{"push manifest", req("PUT", "/v2/a/app/manifests/v2", []byte(`{}`), "Content-Type", "application/vnd.oci.image.manifest.v1+json"), []int{401, 403, 400, 403, 400}},
		{"delete tag of other project", req("DELETE", "/v2/b/app/manifests/nope", nil), []int{401, 403, 403, 404, 404}},
		{"anonymous mount into b", req("POST", "/v2/b/app2/blobs/uploads/?mount="+layerA, nil), []int{401, 403, 403, 202, 201}},
		{"mount a into b", req("POST", "/v2/b/app/blobs/uploads/?mount="+layerA+"&from=a/app", nil), []int{401, 403, 403, 202, 201}},
		{"mount a into a", req("POST", "/v2/a/copy/blobs/uploads/?mount="+layerA+"&from=a/app", nil), []int{401, 403, 201, 403, 201}},
	}
	for _, c := range cells {
		for i, user := range callers {
			resp := c.request(user)
			if resp.StatusCode != c.want[i] {
				who := user
				if who == "" {
					who = "anonymous"
				}
				t.Errorf("%s as %s: %d, want %d", c.name, who, resp.StatusCode, c.want[i])
			}
			if resp.StatusCode == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="`) {
				t.Errorf("%s: 401 without a Bearer challenge", c.name)
			}
		}
	}
	// A member of b mounting from a gets the same answer as for a blob that does not exist.
	resp, _ := s.do("POST", "/v2/b/app/blobs/uploads/?mount=sha256:"+strings.Repeat("1", 64)+"&from=a/app", nil, s.as("member-b")...)
	if resp.StatusCode != 202 {
		t.Errorf("mount of a missing blob: %d", resp.StatusCode)
	}
	// Delete: the member deletes, readers and strangers do not.
	for _, c := range []struct {
		user string
		want int
	}{{"", 401}, {"reader-a", 403}, {"member-b", 403}, {"member-a", 202}} {
		resp, _ := s.do("DELETE", "/v2/a/app/manifests/v1", nil, s.as(c.user)...)
		if resp.StatusCode != c.want {
			t.Errorf("delete tag as %q: %d, want %d", c.user, resp.StatusCode, c.want)
		}
	}
	// The catalog shows each caller what they may read.
	for _, c := range []struct {
		user string
		want string
	}{{"reader-a", `["a/app","a/copy"]`}, {"member-b", `["b/app","b/app2"]`}, {"admin", `["a/app","a/copy","b/app","b/app2"]`}} {
		_, body := s.do("GET", "/v2/_catalog", nil, s.as(c.user)...)
		var cat struct{ Repositories []string }
		json.Unmarshal(body, &cat)
		got, _ := json.Marshal(cat.Repositories)
		if string(got) != c.want {
			t.Errorf("catalog as %s: %s, want %s", c.user, got, c.want)
		}
	}
	resp, _ = s.do("GET", "/v2/_catalog", nil)
	if resp.StatusCode != 401 {
		t.Errorf("anonymous catalog: %d", resp.StatusCode)
	}
}

// token asks the token endpoint for scope as user.
func (s *secured) token(user, scope string) (string, *http.Response) {
	resp, body := s.do("GET", "/token?service=xloud-image&scope="+scope, nil, s.as(user)...)
	var tr struct{ Token string }
	json.Unmarshal(body, &tr)
	return tr.Token, resp
}

func TestTokenEndpointGrantsOnlyWhatPolicyAllows(t *testing.T) {
	s := newSecured(t)
	s.seed()
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	tok, resp := s.token("reader-a", "repository:a/app:pull,push")
	if resp.StatusCode != 200 {
		t.Fatalf("token: %d", resp.StatusCode)
	}
	claims, err := s.signer.Verify(context.Background(), tok)
	if err != nil || len(claims.Access) != 1 || strings.Join(claims.Access[0].Actions, ",") != "pull" {
		t.Fatalf("reader got %+v %v", claims, err)
	}
	r, _ := s.do("GET", "/v2/a/app/manifests/v1", nil, bearer(tok)...)
	if r.StatusCode != 200 {
		t.Fatalf("pull with reader token: %d", r.StatusCode)
	}
	r, _ = s.do("POST", "/v2/a/app/blobs/uploads/", nil, bearer(tok)...)
	if r.StatusCode != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("push with pull-only token: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	// A token for one repository does not open another.
	r, _ = s.do("GET", "/v2/a/other/manifests/v1", nil, bearer(tok)...)
	if r.StatusCode != 401 {
		t.Fatalf("token used on another repository: %d", r.StatusCode)
	}
	// A stranger gets a token with nothing in it.
	tok, _ = s.token("member-b", "repository:a/app:pull")
	if c, _ := s.signer.Verify(context.Background(), tok); len(c.Access) != 0 {
		t.Fatalf("member-b granted %+v on a/app", c.Access)
	}
	// Anonymous gets an empty token, not an error (clients then fail at the registry).
	tok, resp = s.token("", "repository:a/app:pull")
	if c, _ := s.signer.Verify(context.Background(), tok); resp.StatusCode != 200 || len(c.Access) != 0 {
		t.Fatalf("anonymous token: %d %+v", resp.StatusCode, c.Access)
	}
	// Wrong password: 401, no token.
	resp, body := s.do("GET", "/token?scope=repository:a/app:pull", nil, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("member-a:wrong")))
	if resp.StatusCode != 401 || bytes.Contains(body, []byte("token\"")) {
		t.Fatalf("wrong password: %d %s", resp.StatusCode, body)
	}
	// OAuth2 password grant, as containerd sends it.
	resp, body = s.do("POST", "/token", []byte("grant_type=password&username=member-a&password=member-a-pw&service=xloud-image&scope=repository:a/app:push,pull"), "Content-Type", "application/x-www-form-urlencoded")
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(body, &tr)
	if c, err := s.signer.Verify(context.Background(), tr.AccessToken); resp.StatusCode != 200 || err != nil || len(c.Access) != 1 || len(c.Access[0].Actions) != 2 {
		t.Fatalf("password grant: %d %s", resp.StatusCode, body)
	}
}

// TestHostileCredentials: every forged, stale or malformed credential is refused with 401,
// the body gives nothing away, and each refusal is logged once without the secret.
func TestHostileCredentials(t *testing.T) {
	s := newSecured(t)
	s.seed()
	good, _ := s.token("member-a", "repository:a/app:pull")
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forgedPayload := base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte(`"a/app"`), []byte(`"b/app"`), 1))
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	otherKey := &auth.Signer{Service: "xloud-image", Now: time.Now}
	other, _, _ := mustSigner(t, otherKey).Sign(context.Background(), auth.Principal{UserID: "x", Admin: true}, []auth.Access{{Type: "repository", Name: "a/app", Actions: []string{"pull"}}})
	s.signer.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	expired, _ := s.token("member-a", "repository:a/app:pull")
	s.signer.Now = time.Now

	ctx := context.Background()
	u, _ := s.id.UserByName(ctx, "member-a")
	proj, _ := s.id.ProjectByName(ctx, "a")
	_, ksToken, err := s.id.IssueToken(ctx, u, proj.ID, []string{"password"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := s.do("GET", "/v2/a/app/manifests/v1", nil, "X-Auth-Token", ksToken)
	if r.StatusCode != 200 {
		t.Fatalf("valid Keystone token: %d", r.StatusCode)
	}
	if err := s.id.RevokeToken(ctx, ksToken); err != nil {
		t.Fatal(err)
	}

	var logs syncBuf
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(prev)

	cases := []struct {
		name, header, value, secret string
	}{
		{"truncated", "Authorization", "Bearer " + good[:len(good)-10], good[:len(good)-10]},
		{"re-signed payload", "Authorization", "Bearer " + parts[0] + "." + forgedPayload + "." + parts[2], forgedPayload},
		{"alg none", "Authorization", "Bearer " + noneHeader + "." + parts[1] + ".", parts[1]},
		{"other key", "Authorization", "Bearer " + other, other},
		{"expired", "Authorization", "Bearer " + expired, expired},
		{"revoked keystone token", "X-Auth-Token", ksToken, ksToken},
		{"garbage keystone token", "X-Auth-Token", "not-a-token", "not-a-token"},
		{"wrong password", "Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("member-a:nope-secret")), "nope-secret"},
		{"unknown user", "Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("ghost:ghost-secret")), "ghost-secret"},
		{"malformed basic", "Authorization", "Basic !!!", ""},
		{"unknown scheme", "Authorization", "Digest abc", ""},
		{"huge", "Authorization", "Bearer " + strings.Repeat("A", 9000), ""},
	}
	for _, c := range cases {
		before := logs.count("registry access refused")
		resp, body := s.do("GET", "/v2/a/app/manifests/v1", nil, c.header, c.value)
		if resp.StatusCode != 401 {
			t.Errorf("%s: %d, want 401", c.name, resp.StatusCode)
		}
		if c.secret != "" && (bytes.Contains(body, []byte(c.secret)) || strings.Contains(logs.String(), c.secret)) {
			t.Errorf("%s: the secret leaked into the body or the log", c.name)
		}
		if !bytes.Contains(body, []byte(`"UNAUTHORIZED"`)) {
			t.Errorf("%s: body %s", c.name, body)
		}
		if n := logs.count("registry access refused") - before; n != 1 {
			t.Errorf("%s: logged %d times, want once", c.name, n)
		}
	}
}

func mustSigner(t *testing.T, s *auth.Signer) *auth.Signer {
	t.Helper()
	dir := t.TempDir()
	m, err := meta.OpenBolt(filepath.Join(dir, "other.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	other, err := auth.NewSigner(context.Background(), m, s.Service)
	if err != nil {
		t.Fatal(err)
	}
	return other
}

// syncBuf collects log lines written while requests are served.
type syncBuf struct{ testenv.SyncBuffer }

func (s *syncBuf) count(sub string) int { return strings.Count(s.String(), sub) }

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
