package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is the time both the fake Keystone and the client see.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeKeystone is an in-memory Keystone v3: users, projects, effective role assignments and
// tokens, with the answers the real one gives to the calls the client makes. It counts the
// calls it gets.
type fakeKeystone struct {
	clock    *fakeClock
	tokenTTL time.Duration
	// hold, when not nil, delays token validations until it is closed.
	hold chan struct{}

	mu       sync.Mutex
	users    map[string]fakeUser  // by name
	projects map[string]Project   // by id
	roles    map[string][]string  // user id + "/" + project id → role names
	tokens   map[string]fakeToken // by secret
	calls    map[string]int       // "METHOD /path" → count
	next     int
}

type fakeUser struct{ id, password string }

type fakeToken struct {
	userID, userName, projectID string
	expires                     time.Time
}

func newFakeKeystone(t *testing.T, clock *fakeClock) (*fakeKeystone, *httptest.Server) {
	f := &fakeKeystone{clock: clock, tokenTTL: time.Hour,
		users: map[string]fakeUser{}, projects: map[string]Project{}, roles: map[string][]string{},
		tokens: map[string]fakeToken{}, calls: map[string]int{}}
	f.project("p-service", "service")
	f.project("p-kproj", "kproj")
	f.user("u-svc", "svc", "svcpw", "p-service", "admin", "member", "reader")
	f.user("u-member", "kmember", "memberpw", "p-kproj", "member", "reader")
	f.user("u-reader", "kreader", "readerpw", "p-kproj", "reader")
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeKeystone) project(id, name string) {
	f.projects[id] = Project{ID: id, Name: name, DomainID: "default", Enabled: true}
}

func (f *fakeKeystone) user(id, name, pw, project string, roles ...string) {
	f.users[name] = fakeUser{id: id, password: pw}
	f.roles[id+"/"+project] = roles
}

func (f *fakeKeystone) count(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[call]
}

// issue makes a token directly, as a user who signed in elsewhere would hold.
func (f *fakeKeystone) issue(userName, projectID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issueLocked(userName, projectID)
}

func (f *fakeKeystone) issueLocked(userName, projectID string) string {
	f.next++
	secret := fmt.Sprintf("tok%d", f.next)
	f.tokens[secret] = fakeToken{userID: f.users[userName].id, userName: userName, projectID: projectID,
		expires: f.clock.Now().Add(f.tokenTTL)}
	return secret
}

// holdValidations makes token validations wait until the returned channel is closed.
func (f *fakeKeystone) holdValidations() chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = make(chan struct{})
	return f.hold
}

func (f *fakeKeystone) revoke(secret string) {
	f.mu.Lock()
	delete(f.tokens, secret)
	f.mu.Unlock()
}

func (f *fakeKeystone) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls[r.Method+" "+r.URL.Path]++
	hold := f.hold
	f.mu.Unlock()
	if r.Method == http.MethodGet && r.URL.Path == "/v3/auth/tokens" && hold != nil {
		<-hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method == http.MethodPost && r.URL.Path == "/v3/auth/tokens" {
		f.signIn(w, r)
		return
	}
	svc, ok := f.valid(r.Header.Get("X-Auth-Token"))
	if !ok || svc.userName != "svc" {
		writeFakeError(w, http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v3/auth/tokens":
		t, ok := f.valid(r.Header.Get("X-Subject-Token"))
		if !ok {
			writeFakeError(w, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(f.tokenBody(t))
	case r.URL.Path == "/v3/projects":
		out := []Project{}
		for _, p := range f.projects {
			if p.Name == r.URL.Query().Get("name") {
				out = append(out, p)
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"projects": out})
	case strings.HasPrefix(r.URL.Path, "/v3/projects/"):
		p, ok := f.projects[strings.TrimPrefix(r.URL.Path, "/v3/projects/")]
		if !ok {
			writeFakeError(w, http.StatusNotFound)
			return
		}
		if p.Name == "huge" {
			p.Description = strings.Repeat("x", maxKeystoneBody)
		}
		json.NewEncoder(w).Encode(map[string]any{"project": p})
	case r.URL.Path == "/v3/role_assignments":
		f.assignments(w, r)
	default:
		writeFakeError(w, http.StatusNotFound)
	}
}

func (f *fakeKeystone) valid(secret string) (fakeToken, bool) {
	t, ok := f.tokens[secret]
	return t, ok && f.clock.Now().Before(t.expires)
}

func (f *fakeKeystone) signIn(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Auth struct {
			Identity struct {
				Password struct {
					User struct{ Name, Password string } `json:"user"`
				} `json:"password"`
			} `json:"identity"`
			Scope json.RawMessage `json:"scope"`
		} `json:"auth"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	u := req.Auth.Identity.Password.User
	fu, ok := f.users[u.Name]
	if !ok || fu.password != u.Password {
		writeFakeError(w, http.StatusUnauthorized)
		return
	}
	var scope struct {
		Project struct{ Name string } `json:"project"`
	}
	json.Unmarshal(req.Auth.Scope, &scope)
	projectID := ""
	for id, p := range f.projects {
		if scope.Project.Name != "" && p.Name == scope.Project.Name {
			projectID = id
		}
	}
	secret := f.issueLocked(u.Name, projectID)
	w.Header().Set("X-Subject-Token", secret)
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(f.tokenBody(f.tokens[secret]))
}

func (f *fakeKeystone) tokenBody(t fakeToken) map[string]any {
	tok := map[string]any{
		"methods": []string{"password"}, "audit_ids": []string{"a1"},
		"expires_at": t.expires.UTC().Format("2006-01-02T15:04:05.000000Z"),
		"issued_at":  t.expires.Add(-f.tokenTTL).UTC().Format("2006-01-02T15:04:05.000000Z"),
		"user":       map[string]any{"id": t.userID, "name": t.userName, "domain": map[string]string{"id": "default", "name": "Default"}},
	}
	if t.projectID != "" {
		p := f.projects[t.projectID]
		tok["project"] = map[string]any{"id": p.ID, "name": p.Name, "domain": map[string]string{"id": "default", "name": "Default"}}
		roles := []map[string]string{}
		for _, r := range f.roles[t.userID+"/"+t.projectID] {
			roles = append(roles, map[string]string{"id": "r-" + r, "name": r})
		}
		tok["roles"] = roles
	}
	return map[string]any{"token": tok}
}

func (f *fakeKeystone) assignments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("effective") || !q.Has("include_names") {
		writeFakeError(w, http.StatusBadRequest)
		return
	}
	out := []map[string]any{}
	for key, roles := range f.roles {
		user, project, _ := strings.Cut(key, "/")
		if user != q.Get("user.id") || (q.Get("scope.project.id") != "" && project != q.Get("scope.project.id")) {
			continue
		}
		for _, role := range roles {
			out = append(out, map[string]any{
				"role":  map[string]string{"id": "r-" + role, "name": role},
				"user":  map[string]string{"id": user},
				"scope": map[string]any{"project": map[string]string{"id": project, "name": f.projects[project].Name}},
			})
		}
	}
	json.NewEncoder(w).Encode(map[string]any{"role_assignments": out})
}

func writeFakeError(w http.ResponseWriter, status int) {
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%d,"message":"fake says no","title":"x"}}`, status)
}

func newTestKeystone(t *testing.T, cfg KeystoneConfig) (*Keystone, *fakeKeystone, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	f, srv := newFakeKeystone(t, clock)
	cfg.URL = srv.URL
	cfg.User, cfg.Password, cfg.Project = "svc", "svcpw", "service"
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 30 * time.Second
	}
	k, err := NewKeystone(cfg)
	if err != nil {
		t.Fatal(err)
	}
	k.Now = clock.Now
	return k, f, clock
}

func TestKeystoneValidateToken(t *testing.T) {
	k, f, _ := newTestKeystone(t, KeystoneConfig{})
	ctx := context.Background()
	tok, err := k.ValidateToken(ctx, f.issue("kmember", "p-kproj"))
	if err != nil {
		t.Fatal(err)
	}
	if tok.UserID != "u-member" || tok.User.Name != "kmember" || tok.ProjectID != "p-kproj" ||
		tok.Project.Name != "kproj" || !hasRole(tok.Roles, RoleMember) || hasRole(tok.Roles, RoleAdmin) {
		t.Fatalf("token: %+v", tok)
	}
	pr := tok.Principal()
	if !pr.Scoped || pr.ProjectID != "p-kproj" || pr.Admin {
		t.Fatalf("principal: %+v", pr)
	}
	for _, bad := range []string{"", "nonsense", strings.Repeat("a", maxTokenLen+1), "with space", "nl\r\nX-Evil: 1"} {
		if _, err := k.ValidateToken(ctx, bad); !IsAuthError(err) {
			t.Errorf("token %.20q: %v, want an auth error", bad, err)
		}
	}
}

// A validation is cached for CacheTTL: a revoked token keeps working until its entry
// expires, then is refused.
func TestKeystoneRevokedTokenRefusedAfterTTL(t *testing.T) {
	k, f, clock := newTestKeystone(t, KeystoneConfig{CacheTTL: 10 * time.Second})
	ctx := context.Background()
	secret := f.issue("kmember", "p-kproj")
	for i := 0; i < 5; i++ {
		if _, err := k.ValidateToken(ctx, secret); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.count("GET /v3/auth/tokens"); n != 1 {
		t.Fatalf("5 validations made %d calls, want 1", n)
	}
	f.revoke(secret)
	clock.Advance(9 * time.Second)
	if _, err := k.ValidateToken(ctx, secret); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	clock.Advance(2 * time.Second)
	if _, err := k.ValidateToken(ctx, secret); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("after the TTL: %v, want ErrUnauthorized", err)
	}
}

// Refusals are cached for the (shorter) negative TTL.
func TestKeystoneNegativeCache(t *testing.T) {
	k, f, clock := newTestKeystone(t, KeystoneConfig{CacheTTL: time.Minute, NegativeTTL: 3 * time.Second})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := k.ValidateToken(ctx, "garbage"); !errors.Is(err, ErrUnauthorized) {
			t.Fatal(err)
		}
	}
	if n := f.count("GET /v3/auth/tokens"); n != 1 {
		t.Fatalf("3 refusals made %d calls, want 1", n)
	}
	clock.Advance(4 * time.Second)
	k.ValidateToken(ctx, "garbage")
	if n := f.count("GET /v3/auth/tokens"); n != 2 {
		t.Fatalf("after the negative TTL: %d calls, want 2", n)
	}
}

// A cache entry never outlives the token it holds.
func TestKeystoneTokenExpiryCapsCache(t *testing.T) {
	k, f, clock := newTestKeystone(t, KeystoneConfig{CacheTTL: time.Hour})
	f.tokenTTL = time.Minute
	secret := f.issue("kmember", "p-kproj")
	if _, err := k.ValidateToken(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if _, err := k.ValidateToken(context.Background(), secret); !IsAuthError(err) {
		t.Fatalf("expired token: %v", err)
	}
}

// The service token is renewed before it expires, and at once when Keystone refuses it.
func TestKeystoneServiceTokenRenewal(t *testing.T) {
	k, f, clock := newTestKeystone(t, KeystoneConfig{CacheTTL: time.Second})
	ctx := context.Background()
	user := f.issue("kmember", "p-kproj")
	validate := func() {
		t.Helper()
		if _, err := k.ValidateToken(ctx, user); err != nil {
			t.Fatal(err)
		}
	}
	validate()
	clock.Advance(30 * time.Minute)
	validate()
	if n := f.count("POST /v3/auth/tokens"); n != 1 {
		t.Fatalf("sign-ins after 30 min: %d, want 1", n)
	}
	clock.Advance(20 * time.Minute) // 50 of 60 minutes: due
	validate()
	if n := f.count("POST /v3/auth/tokens"); n != 2 {
		t.Fatalf("sign-ins after 50 min: %d, want 2", n)
	}
	// Revoked behind our back: one 401, a new sign-in, the call retried.
	k.mu.Lock()
	f.revoke(k.svc.secret)
	k.mu.Unlock()
	clock.Advance(2 * time.Second)
	validate()
	if n := f.count("POST /v3/auth/tokens"); n != 3 {
		t.Fatalf("sign-ins after revocation: %d, want 3", n)
	}
}

func TestKeystoneWrongServiceCredentials(t *testing.T) {
	k, f, _ := newTestKeystone(t, KeystoneConfig{})
	k.cfg.Password = "wrong"
	err := k.SignIn(context.Background())
	if !errors.Is(err, ErrServiceCredentials) || IsAuthError(err) {
		t.Fatalf("sign-in: %v, want ErrServiceCredentials (not a caller's auth error)", err)
	}
	if _, err := k.ValidateToken(context.Background(), f.issue("kmember", "p-kproj")); err == nil || IsAuthError(err) {
		t.Fatalf("validation without a service token: %v, want a fault", err)
	}
}

func TestKeystonePasswords(t *testing.T) {
	k, f, _ := newTestKeystone(t, KeystoneConfig{})
	ctx := context.Background()
	u, err := k.Authenticate(ctx, "kmember", "memberpw")
	if err != nil || u.ID != "u-member" || u.Name != "kmember" {
		t.Fatalf("authenticate: %+v, %v", u, err)
	}
	k.Authenticate(ctx, "kmember", "memberpw")
	if n := f.count("POST /v3/auth/tokens"); n != 1 {
		t.Fatalf("two checks of one password: %d calls, want 1", n)
	}
	for _, c := range [][2]string{{"kmember", "wrong"}, {"nobody", "memberpw"}, {"", "x"}, {"kmember", ""}} {
		if _, err := k.Authenticate(ctx, c[0], c[1]); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("authenticate %q/%q: %v, want ErrUnauthorized", c[0], c[1], err)
		}
	}
	for user, want := range map[string]bool{"u-svc": true, "u-member": false, "u-nobody": false} {
		if got, err := k.IsAdmin(ctx, user); err != nil || got != want {
			t.Errorf("IsAdmin(%s) = %v, %v; want %v", user, got, err, want)
		}
	}
}

func TestKeystoneDirectory(t *testing.T) {
	k, f, _ := newTestKeystone(t, KeystoneConfig{})
	ctx := context.Background()
	p, err := k.ProjectByName(ctx, "kproj")
	if err != nil || p.ID != "p-kproj" || !p.Enabled {
		t.Fatalf("by name: %+v, %v", p, err)
	}
	if p, err = k.GetProject(ctx, "p-kproj"); err != nil || p.Name != "kproj" {
		t.Fatalf("by id: %+v, %v", p, err)
	}
	for _, name := range []string{"nope", "a/b", ""} {
		if _, err := k.ProjectByName(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Errorf("by name %q: %v", name, err)
		}
		if _, err := k.GetProject(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Errorf("by id %q: %v", name, err)
		}
	}
	roles, err := k.RolesOn(ctx, "u-reader", "p-kproj")
	if err != nil || len(roles) != 1 || roles[0] != RoleReader {
		t.Fatalf("roles: %v, %v", roles, err)
	}
	if roles, err := k.RolesOn(ctx, "u-reader", "p-service"); err != nil || len(roles) != 0 {
		t.Fatalf("roles elsewhere: %v, %v", roles, err)
	}
	k.RolesOn(ctx, "u-reader", "p-kproj")
	if n := f.count("GET /v3/role_assignments"); n != 2 {
		t.Fatalf("role lookups: %d calls, want 2", n)
	}

	// The one policy over Keystone: Basic-authenticated (unscoped) callers.
	pol := &Policy{Directory: k}
	for _, c := range []struct {
		user string
		act  Action
		want bool
	}{
		{"u-member", ActionPush, true}, {"u-reader", ActionPull, true}, {"u-reader", ActionPush, false},
		{"u-svc", ActionPull, false},
	} {
		got, err := pol.AllowRepository(ctx, Principal{UserID: c.user}, "kproj/repo", c.act)
		if err != nil || got != c.want {
			t.Errorf("%s %s kproj/repo: %v, %v; want %v", c.user, c.act, got, err, c.want)
		}
	}
}

func TestKeystoneBoundedAnswers(t *testing.T) {
	// The size bound, with the default timeout: a loaded machine must not turn it into a
	// timeout.
	big, fb, _ := newTestKeystone(t, KeystoneConfig{})
	fb.project("p-huge", "huge")
	if _, err := big.GetProject(context.Background(), "p-huge"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("huge answer: %v", err)
	}
	k, f, _ := newTestKeystone(t, KeystoneConfig{Timeout: 300 * time.Millisecond})
	secret := f.issue("kmember", "p-kproj")
	k.SignIn(context.Background())
	hold := f.holdValidations()
	defer close(hold)
	start := time.Now()
	_, err := k.ValidateToken(context.Background(), secret)
	if err == nil || IsAuthError(err) || time.Since(start) > 5*time.Second {
		t.Fatalf("hanging Keystone: %v after %v, want a timeout fault", err, time.Since(start))
	}
}

func TestKeystoneCacheBounded(t *testing.T) {
	k, _, _ := newTestKeystone(t, KeystoneConfig{CacheSize: 20})
	for i := 0; i < 200; i++ {
		k.ValidateToken(context.Background(), fmt.Sprintf("garbage-%d", i))
	}
	if n := k.tokens.len(); n > 20 {
		t.Fatalf("cache holds %d entries, bound 20", n)
	}
}

// Concurrent validations of one token share one call.
func TestKeystoneConcurrentValidationsShareOneCall(t *testing.T) {
	k, f, _ := newTestKeystone(t, KeystoneConfig{})
	secret := f.issue("kmember", "p-kproj")
	k.SignIn(context.Background())
	hold := f.holdValidations()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := k.ValidateToken(context.Background(), secret)
			errs <- err
		}()
	}
	time.Sleep(200 * time.Millisecond)
	close(hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.count("GET /v3/auth/tokens"); n != 1 {
		t.Fatalf("20 concurrent validations made %d calls, want 1", n)
	}
}

func TestNewKeystoneConfig(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"http://ks:5000", "http://ks:5000/v3"},
		{"http://ks:5000/v3/", "http://ks:5000/v3"},
		{"https://cloud/identity", "https://cloud/identity/v3"},
	} {
		k, err := NewKeystone(KeystoneConfig{URL: c.url, User: "u", Password: "p", Project: "s"})
		if err != nil || k.v3 != c.want {
			t.Errorf("%s: %v, %v; want %s", c.url, k, err, c.want)
		}
	}
	for _, cfg := range []KeystoneConfig{
		{URL: "ks:5000", User: "u", Password: "p", Project: "s"},
		{URL: "http://ks:5000"},
	} {
		if _, err := NewKeystone(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
