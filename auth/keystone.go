package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// KeystoneConfig says which Keystone (the OpenStack Identity API v3) to trust and how this
// service signs in to it.
type KeystoneConfig struct {
	// URL is Keystone's endpoint, with or without its /v3 suffix (http://keystone:5000,
	// https://cloud/identity/v3).
	URL string
	// User, Password and Project are the service credentials; the user needs the admin role
	// (or Keystone's service role) to validate tokens and list role assignments.
	User, Password, Project string
	// UserDomain and ProjectDomain are domain names, "Default" when empty. UserDomain is
	// also the domain of users who sign in to the registry with a name and password.
	UserDomain, ProjectDomain string
	// CacheTTL bounds how long an answer is trusted (30s when zero): a revoked token or role
	// stops working at most this long after Keystone forgets it. Refusals are remembered
	// for NegativeTTL (the smaller of CacheTTL and 5s when zero).
	CacheTTL, NegativeTTL time.Duration
	// CacheSize bounds the entries of each cache (10000 when zero).
	CacheSize int
	// Timeout bounds every call to Keystone (10s when zero).
	Timeout time.Duration
	// HTTPClient sends the calls; nil: a client of its own.
	HTTPClient *http.Client
}

// ErrServiceCredentials means Keystone refused this service's own credentials: a
// configuration fault, never the caller's.
var ErrServiceCredentials = errors.New("keystone refused the service credentials")

// Keystone is an external Keystone acting as this service's identity: it validates tokens
// (TokenValidator), checks user names and passwords (PasswordChecker) and answers the
// policy's questions about projects and roles (Directory). It signs in with the service
// credentials and renews its token before it expires. Answers are cached (bounded in time
// and size); concurrent askers of one answer share one call.
type Keystone struct {
	// Now is the clock; tests replace it.
	Now func() time.Time

	cfg      KeystoneConfig
	v3       string // base URL ending in /v3
	client   *http.Client
	cacheKey []byte // keys the password cache, so it never holds a password

	mu  sync.Mutex // serializes sign-ins; guards svc
	svc serviceToken

	tokens    *ttlCache[Token]
	passwords *ttlCache[User]
	admins    *ttlCache[bool]
	projects  *ttlCache[Project]
	roles     *ttlCache[[]Role]
}

// serviceToken is this service's own token.
type serviceToken struct {
	secret   string
	renewAt  time.Time
	domainID string // the service project's domain
}

// Defaults of KeystoneConfig.
const (
	DefaultKeystoneCacheTTL = 30 * time.Second
	defaultKeystoneNegTTL   = 5 * time.Second
	defaultKeystoneCache    = 10000
	defaultKeystoneTimeout  = 10 * time.Second
)

// maxKeystoneBody bounds what is read of any Keystone answer.
const maxKeystoneBody = 4 << 20

// NewKeystone returns the client of the Keystone cfg names. It does not call Keystone yet.
func NewKeystone(cfg KeystoneConfig) (*Keystone, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("keystone url %q: want http(s)://host[:port][/path]", cfg.URL)
	}
	if cfg.User == "" || cfg.Password == "" || cfg.Project == "" {
		return nil, fmt.Errorf("keystone: the service user, password and project are required")
	}
	cfg = keystoneDefaults(cfg)
	v3 := strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/")
	if !strings.HasSuffix(v3, "/v3") {
		v3 += "/v3"
	}
	k := &Keystone{Now: time.Now, cfg: cfg, v3: v3, client: cfg.HTTPClient, cacheKey: make([]byte, 32)}
	rand.Read(k.cacheKey)
	if k.client == nil {
		k.client = &http.Client{Timeout: cfg.Timeout}
	}
	now := func() time.Time { return k.Now() }
	k.tokens = newTTLCache[Token](cfg.CacheTTL, cfg.NegativeTTL, cfg.CacheSize, now)
	k.passwords = newTTLCache[User](cfg.CacheTTL, cfg.NegativeTTL, cfg.CacheSize, now)
	k.admins = newTTLCache[bool](cfg.CacheTTL, cfg.NegativeTTL, cfg.CacheSize, now)
	k.projects = newTTLCache[Project](cfg.CacheTTL, cfg.NegativeTTL, cfg.CacheSize, now)
	k.roles = newTTLCache[[]Role](cfg.CacheTTL, cfg.NegativeTTL, cfg.CacheSize, now)
	return k, nil
}

func keystoneDefaults(cfg KeystoneConfig) KeystoneConfig {
	if cfg.UserDomain == "" {
		cfg.UserDomain = DefaultDomainName
	}
	if cfg.ProjectDomain == "" {
		cfg.ProjectDomain = DefaultDomainName
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultKeystoneCacheTTL
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = min(cfg.CacheTTL, defaultKeystoneNegTTL)
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = defaultKeystoneCache
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultKeystoneTimeout
	}
	return cfg
}

// SignIn signs the service user in now (it otherwise does on first use), so that wrong
// service credentials show at start. A refusal is ErrServiceCredentials.
func (k *Keystone) SignIn(ctx context.Context) error {
	_, err := k.serviceToken(ctx)
	return err
}

// ValidateToken asks Keystone (GET /v3/auth/tokens) who the token speaks for. An unknown,
// revoked or expired token is ErrUnauthorized (ErrTokenExpired once past its expiry).
func (k *Keystone) ValidateToken(ctx context.Context, secret string) (Token, error) {
	if secret == "" || len(secret) > maxTokenLen {
		return Token{}, ErrUnauthorized
	}
	if !printableASCII(secret) {
		return Token{}, ErrTokenMalformed
	}
	h := sha256.Sum256([]byte(secret))
	t, err := k.tokens.get(ctx, hex.EncodeToString(h[:]), func(ctx context.Context) (Token, time.Time, error) {
		t, err := k.validate(ctx, secret)
		return t, t.Expires, err
	})
	if err != nil {
		return Token{}, err
	}
	if !k.Now().Before(t.Expires) {
		return Token{}, ErrTokenExpired
	}
	t.Roles = slices.Clone(t.Roles)
	return t, nil
}

func (k *Keystone) validate(ctx context.Context, secret string) (Token, error) {
	r, err := k.serviceCall(ctx, http.MethodGet, "/auth/tokens?nocatalog", http.Header{"X-Subject-Token": {secret}})
	if err != nil {
		return Token{}, fmt.Errorf("keystone: validate token: %w", err)
	}
	switch r.status {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusUnauthorized:
		return Token{}, ErrUnauthorized
	default:
		return Token{}, r.unexpected("validate token")
	}
	t, err := parseKeystoneToken(r.body)
	if err != nil {
		return Token{}, fmt.Errorf("keystone: validate token: %w", err)
	}
	return t, nil
}

// Authenticate checks a user name (in the configured user domain) and password by asking
// Keystone for an unscoped token (POST /v3/auth/tokens, password method). A refusal is
// ErrUnauthorized.
func (k *Keystone) Authenticate(ctx context.Context, name, password string) (User, error) {
	if name == "" || password == "" || len(name) > 255 || len(password) > 4096 {
		return User{}, ErrUnauthorized
	}
	m := hmac.New(sha256.New, k.cacheKey)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(password))
	key := hex.EncodeToString(m.Sum(nil))
	return k.passwords.get(ctx, key, func(ctx context.Context) (User, time.Time, error) {
		_, t, err := k.issue(ctx, name, password, "")
		if err != nil && !errors.Is(err, ErrUnauthorized) {
			err = fmt.Errorf("keystone: authenticate %q: %w", name, err)
		}
		return t.User, t.Expires, err
	})
}

// IsAdmin reports whether the user holds the admin role on any project (effective role
// assignments: groups, inheritance and implied roles included).
func (k *Keystone) IsAdmin(ctx context.Context, userID string) (bool, error) {
	if !plausibleID(userID) {
		return false, nil
	}
	return k.admins.get(ctx, userID, func(ctx context.Context) (bool, time.Time, error) {
		as, err := k.assignments(ctx, url.Values{"user.id": {userID}})
		for _, a := range as {
			if a.Scope.Project != nil && ksRole(a.Role.Name) == RoleAdmin {
				return true, time.Time{}, nil
			}
		}
		return false, time.Time{}, err
	})
}

// GetProject returns the project with id; ErrNotFound if Keystone has none.
func (k *Keystone) GetProject(ctx context.Context, id string) (Project, error) {
	if !plausibleID(id) {
		return Project{}, ErrNotFound
	}
	return k.projects.get(ctx, "id:"+id, func(ctx context.Context) (Project, time.Time, error) {
		r, err := k.serviceCall(ctx, http.MethodGet, "/projects/"+url.PathEscape(id), nil)
		if err != nil {
			return Project{}, time.Time{}, fmt.Errorf("keystone: get project %s: %w", id, err)
		}
		switch r.status {
		case http.StatusOK:
		case http.StatusNotFound:
			return Project{}, time.Time{}, ErrNotFound
		default:
			return Project{}, time.Time{}, r.unexpected("get project " + id)
		}
		var out struct {
			Project ksProject `json:"project"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil || out.Project.ID == "" {
			return Project{}, time.Time{}, fmt.Errorf("keystone: get project %s: malformed answer", id)
		}
		return out.Project.project(), time.Time{}, nil
	})
}

// ProjectByName returns the project named name (GET /v3/projects?name=). Names are unique
// within a domain; when several domains have one, the service project's domain wins.
func (k *Keystone) ProjectByName(ctx context.Context, name string) (Project, error) {
	if !plausibleID(name) {
		return Project{}, ErrNotFound
	}
	return k.projects.get(ctx, "name:"+name, func(ctx context.Context) (Project, time.Time, error) {
		r, err := k.serviceCall(ctx, http.MethodGet, "/projects?name="+url.QueryEscape(name), nil)
		if err != nil {
			return Project{}, time.Time{}, fmt.Errorf("keystone: find project %q: %w", name, err)
		}
		if r.status != http.StatusOK {
			return Project{}, time.Time{}, r.unexpected(fmt.Sprintf("find project %q", name))
		}
		var out struct {
			Projects []ksProject `json:"projects"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil {
			return Project{}, time.Time{}, fmt.Errorf("keystone: find project %q: malformed answer", name)
		}
		p, err := k.pickProject(name, out.Projects)
		return p, time.Time{}, err
	})
}

// pickProject chooses among the projects of one name.
func (k *Keystone) pickProject(name string, ps []ksProject) (Project, error) {
	switch len(ps) {
	case 0:
		return Project{}, ErrNotFound
	case 1:
		return ps[0].project(), nil
	}
	k.mu.Lock()
	domain := k.svc.domainID
	k.mu.Unlock()
	for _, p := range ps {
		if p.DomainID == domain {
			return p.project(), nil
		}
	}
	return Project{}, fmt.Errorf("keystone: project name %q is ambiguous: %d domains have one", name, len(ps))
}

// RolesOn returns the roles the user effectively holds on the project.
func (k *Keystone) RolesOn(ctx context.Context, userID, projectID string) ([]Role, error) {
	if !plausibleID(userID) || !plausibleID(projectID) {
		return nil, nil
	}
	roles, err := k.roles.get(ctx, userID+"\x00"+projectID, func(ctx context.Context) ([]Role, time.Time, error) {
		as, err := k.assignments(ctx, url.Values{"user.id": {userID}, "scope.project.id": {projectID}})
		var out []Role
		for _, a := range as {
			if r := ksRole(a.Role.Name); a.Scope.Project != nil && a.Scope.Project.ID == projectID && !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
		return out, time.Time{}, err
	})
	return slices.Clone(roles), err
}

// assignments lists effective role assignments (GET /v3/role_assignments) matching q. A
// user or project Keystone does not know has none.
func (k *Keystone) assignments(ctx context.Context, q url.Values) ([]ksAssignment, error) {
	r, err := k.serviceCall(ctx, http.MethodGet, "/role_assignments?effective&include_names&"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("keystone: list role assignments: %w", err)
	}
	switch r.status {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil
	default:
		return nil, r.unexpected("list role assignments")
	}
	var out struct {
		RoleAssignments []ksAssignment `json:"role_assignments"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		return nil, fmt.Errorf("keystone: list role assignments: malformed answer: %v", err)
	}
	return out.RoleAssignments, nil
}

// serviceToken returns this service's token, signing in when there is none or it is due
// for renewal (three quarters into its life).
func (k *Keystone) serviceToken(ctx context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.svc.secret != "" && k.Now().Before(k.svc.renewAt) {
		return k.svc.secret, nil
	}
	secret, t, err := k.issue(ctx, k.cfg.User, k.cfg.Password, k.cfg.Project)
	if errors.Is(err, ErrUnauthorized) {
		return "", fmt.Errorf("%w (user %q, project %q)", ErrServiceCredentials, k.cfg.User, k.cfg.Project)
	}
	if err != nil {
		return "", fmt.Errorf("keystone: service sign-in: %w", err)
	}
	life := t.Expires.Sub(t.Issued)
	if t.Issued.IsZero() {
		life = t.Expires.Sub(k.Now())
	}
	k.svc = serviceToken{secret: secret, renewAt: k.Now().Add(life * 3 / 4), domainID: t.Project.DomainID}
	return secret, nil
}

// dropServiceToken forgets secret if it is still the current service token.
func (k *Keystone) dropServiceToken(secret string) {
	k.mu.Lock()
	if k.svc.secret == secret {
		k.svc = serviceToken{}
	}
	k.mu.Unlock()
}

// serviceCall makes a call as the service user. A 401 means the service token went bad
// (revoked, keys rotated): sign in again and retry once.
func (k *Keystone) serviceCall(ctx context.Context, method, path string, header http.Header) (ksResponse, error) {
	for attempt := 0; ; attempt++ {
		tok, err := k.serviceToken(ctx)
		if err != nil {
			return ksResponse{}, err
		}
		h := header.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set("X-Auth-Token", tok)
		r, err := k.send(ctx, method, path, h, nil)
		if err != nil || r.status != http.StatusUnauthorized || attempt > 0 {
			return r, err
		}
		k.dropServiceToken(tok)
	}
}

// issue asks for a token with the password method, scoped to project (by name) or, when
// project is empty, explicitly unscoped. A refusal is ErrUnauthorized.
func (k *Keystone) issue(ctx context.Context, user, password, project string) (string, Token, error) {
	a := map[string]any{"identity": map[string]any{
		"methods": []string{"password"},
		"password": map[string]any{"user": map[string]any{
			"name": user, "password": password, "domain": map[string]string{"name": k.cfg.UserDomain}}},
	}}
	a["scope"] = "unscoped"
	if project != "" {
		a["scope"] = map[string]any{"project": map[string]any{
			"name": project, "domain": map[string]string{"name": k.cfg.ProjectDomain}}}
	}
	r, err := k.send(ctx, http.MethodPost, "/auth/tokens?nocatalog", nil, map[string]any{"auth": a})
	if err != nil {
		return "", Token{}, err
	}
	switch r.status {
	case http.StatusCreated, http.StatusOK:
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound:
		return "", Token{}, ErrUnauthorized
	default:
		return "", Token{}, r.unexpected("issue token")
	}
	secret := r.header.Get("X-Subject-Token")
	if secret == "" {
		return "", Token{}, fmt.Errorf("keystone: issue token: answer without X-Subject-Token")
	}
	t, err := parseKeystoneToken(r.body)
	return secret, t, err
}

// ksResponse is one answer of Keystone, its body read (bounded).
type ksResponse struct {
	status int
	header http.Header
	body   []byte
}

// send makes one call below /v3, with a timeout; in, when not nil, is sent as JSON.
func (k *Keystone) send(ctx context.Context, method, path string, header http.Header, in any) (ksResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, k.cfg.Timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return ksResponse{}, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, k.v3+path, body)
	if err != nil {
		return ksResponse{}, err
	}
	for name, vs := range header {
		req.Header[name] = vs
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return ksResponse{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxKeystoneBody+1))
	if err != nil {
		return ksResponse{}, fmt.Errorf("%s %s: read answer: %w", method, req.URL.Path, err)
	}
	if len(b) > maxKeystoneBody {
		return ksResponse{}, fmt.Errorf("%s %s: answer larger than %d bytes", method, req.URL.Path, maxKeystoneBody)
	}
	return ksResponse{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// unexpected describes an answer the caller has no meaning for: what was asked, the status
// and Keystone's message.
func (r ksResponse) unexpected(what string) error {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	json.Unmarshal(r.body, &e)
	msg := e.Error.Message
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return fmt.Errorf("keystone: %s: status %d: %s", what, r.status, msg)
}

// Wire types of Keystone v3.
type (
	ksRef struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	ksScoped struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Domain ksRef  `json:"domain"`
	}
	ksToken struct {
		Token struct {
			Methods   []string  `json:"methods"`
			ExpiresAt string    `json:"expires_at"`
			IssuedAt  string    `json:"issued_at"`
			AuditIDs  []string  `json:"audit_ids"`
			User      ksScoped  `json:"user"`
			Project   *ksScoped `json:"project"`
			Roles     []ksRef   `json:"roles"`
		} `json:"token"`
	}
	ksProject struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		DomainID    string `json:"domain_id"`
		Description string `json:"description"`
		Enabled     bool   `json:"enabled"`
	}
	ksAssignment struct {
		Role  ksRef `json:"role"`
		Scope struct {
			Project *ksScoped `json:"project"`
		} `json:"scope"`
	}
)

func (p ksProject) project() Project {
	return Project(p)
}

// parseKeystoneToken reads a token body into a Token: user, project (when project-scoped),
// roles, times.
func parseKeystoneToken(b []byte) (Token, error) {
	var kt ksToken
	if err := json.Unmarshal(b, &kt); err != nil {
		return Token{}, fmt.Errorf("malformed token body: %v", err)
	}
	w := kt.Token
	if w.User.ID == "" {
		return Token{}, fmt.Errorf("malformed token body: no user")
	}
	expires, err := time.Parse(time.RFC3339Nano, w.ExpiresAt)
	if err != nil {
		return Token{}, fmt.Errorf("malformed token body: expires_at %q", w.ExpiresAt)
	}
	issued, _ := time.Parse(time.RFC3339Nano, w.IssuedAt)
	t := Token{
		UserID: w.User.ID, Methods: w.Methods, Issued: issued, Expires: expires,
		User: User{ID: w.User.ID, Name: w.User.Name, DomainID: w.User.Domain.ID, Enabled: true},
	}
	if len(w.AuditIDs) > 0 {
		t.AuditID = w.AuditIDs[0]
	}
	if w.Project != nil && w.Project.ID != "" {
		t.ProjectID = w.Project.ID
		t.Project = Project{ID: w.Project.ID, Name: w.Project.Name, DomainID: w.Project.Domain.ID, Enabled: true}
	}
	for _, r := range w.Roles {
		if role := ksRole(r.Name); !slices.Contains(t.Roles, role) {
			t.Roles = append(t.Roles, role)
		}
	}
	return t, nil
}

// ksRole maps a Keystone role name onto ours: names compare case-insensitively (older
// clouds call it "Member"); other roles pass through and grant nothing here.
func ksRole(name string) Role { return Role(strings.ToLower(name)) }

// plausibleID: ids and names sent to Keystone are bounded and printable.
func plausibleID(s string) bool {
	return s != "" && len(s) <= 255 && !strings.ContainsAny(s, "/\x00\r\n")
}

// printableASCII: what a token may hold (it travels in a header).
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
