package identityapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/xloud/xloud-image/auth"
)

// authRequest is the body of POST /v3/auth/tokens.
type authRequest struct {
	Auth *struct {
		Identity *identityRequest `json:"identity"`
		// Scope is an object, the string "unscoped", or absent.
		Scope json.RawMessage `json:"scope"`
	} `json:"auth"`
}

type identityRequest struct {
	Methods  []string        `json:"methods"`
	Password *passwordMethod `json:"password"`
	Token    *tokenMethod    `json:"token"`
}

type passwordMethod struct {
	User *userCredentials `json:"user"`
}

type tokenMethod struct {
	ID string `json:"id"`
}

type userCredentials struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Password string     `json:"password"`
	Domain   *domainArg `json:"domain"`
}

// domainArg names a domain by id or name.
type domainArg struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// isDefault reports whether d names the only domain.
func (d *domainArg) isDefault() bool {
	switch {
	case d.ID != "":
		return d.ID == auth.DefaultDomainID
	case d.Name != "":
		return strings.EqualFold(d.Name, auth.DefaultDomainName)
	}
	return false
}

type scopeRequest struct {
	Project *struct {
		ID     string     `json:"id"`
		Name   string     `json:"name"`
		Domain *domainArg `json:"domain"`
	} `json:"project"`
	Domain *domainArg      `json:"domain"`
	System json.RawMessage `json:"system"`
}

// handleCreateToken authenticates (password and/or token methods) and issues a token,
// scoped to the requested project, to the user's default project when no scope is asked
// for, or unscoped. Keystone api-ref: POST /v3/auth/tokens.
func (h *Handler) handleCreateToken(w http.ResponseWriter, r *http.Request) error {
	var req authRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Auth == nil || req.Auth.Identity == nil || len(req.Auth.Identity.Methods) == 0 {
		return missing("identity", "auth")
	}
	user, parent, err := h.authenticate(r.Context(), r.RemoteAddr, req.Auth.Identity)
	if err != nil {
		return err
	}
	projectID, system, err := h.scopeProject(r.Context(), user, req.Auth.Scope)
	if err != nil {
		return err
	}
	methods, expires := req.Auth.Identity.Methods, time.Time{}
	if parent != nil { // a token from a token keeps the methods and expiry it came from
		methods, expires = mergeMethods(parent.Methods, methods), parent.Expires
	}
	var t auth.Token
	var secret string
	if system {
		t, secret, err = h.id.IssueSystemToken(r.Context(), user, methods, expires)
	} else {
		t, secret, err = h.id.IssueToken(r.Context(), user, projectID, methods, expires)
	}
	if err != nil {
		return err
	}
	w.Header().Set("X-Subject-Token", secret)
	return writeJSON(w, r, http.StatusCreated, map[string]any{"token": tokenOut(t, h.catalogFor(r, t))})
}

// authenticate runs every listed method; all must succeed and name the same user.
func (h *Handler) authenticate(ctx context.Context, addr string, id *identityRequest) (auth.User, *auth.Token, error) {
	var user auth.User
	var parent *auth.Token
	pw, tok := id.Password, id.Token
	for _, m := range id.Methods {
		var u auth.User
		switch {
		case m == "password" && pw != nil && pw.User != nil:
			var err error
			if u, err = h.passwordUser(ctx, addr, pw.User); err != nil {
				return user, nil, err
			}
		case m == "token" && tok != nil && tok.ID != "":
			t, err := h.id.ValidateToken(ctx, tok.ID)
			if err != nil {
				return user, nil, err
			}
			u, parent = t.User, &t
		case m == "password" || m == "token":
			return user, nil, missing(m, "identity")
		default:
			return user, nil, unauthorized("unsupported auth method")
		}
		if user.ID != "" && user.ID != u.ID {
			return user, nil, unauthorized("auth methods name different users")
		}
		user = u
	}
	return user, parent, nil
}

// passwordUser checks a user's password, sent from addr, within the lockouts; the user is
// named by id, or by name and domain.
func (h *Handler) passwordUser(ctx context.Context, addr string, c *userCredentials) (auth.User, error) {
	name := c.Name
	switch {
	case c.ID != "":
		u, err := h.id.GetUser(ctx, c.ID)
		if errors.Is(err, auth.ErrNotFound) {
			name = "" // still pay the password check: no timing difference
		} else if err != nil {
			return u, err
		} else {
			name = u.Name
		}
	case c.Name == "":
		return auth.User{}, missing("id or name", "user")
	case c.Domain == nil:
		return auth.User{}, missing("domain", "user")
	case !c.Domain.isDefault():
		name = ""
	}
	// An unknown id counts against itself, so every name a guesser tries can lock out.
	counted := name
	switch {
	case counted != "":
	case c.ID != "":
		counted = "id:" + c.ID
	default:
		counted = c.Name
	}
	u, err := h.opt.Throttle.Guard(ctx, counted, addr, func() (auth.User, error) {
		return h.id.Authenticate(ctx, name, c.Password)
	})
	if err != nil {
		return u, err
	}
	if c.ID != "" && u.ID != c.ID {
		return auth.User{}, unauthorized("user id mismatch")
	}
	return u, nil
}

// scopeProject resolves the requested scope to a project id ("" for unscoped), or to the
// system ({"system": {"all": true}}). Without a scope, the user's default project is used
// when the user holds a role on it (Keystone).
func (h *Handler) scopeProject(ctx context.Context, u auth.User, raw json.RawMessage) (string, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		pid, err := h.defaultProject(ctx, u)
		return pid, false, err
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s != "unscoped" {
			return "", false, badRequest("Invalid scope %q.", s)
		}
		return "", false, nil
	}
	var sc scopeRequest
	if err := json.Unmarshal(raw, &sc); err != nil {
		return "", false, badRequest("Malformed scope: %v.", err)
	}
	if len(sc.System) > 0 {
		var sys struct {
			All *bool `json:"all"`
		}
		if err := json.Unmarshal(sc.System, &sys); err != nil || sys.All == nil || !*sys.All || sc.Project != nil || sc.Domain != nil {
			return "", false, badRequest(`The system scope is {"system": {"all": true}}, alone.`)
		}
		return "", true, nil
	}
	pid, err := h.scopeToProject(ctx, sc)
	return pid, false, err
}

// scopeToProject resolves a project scope, by id or by name and domain.
func (h *Handler) scopeToProject(ctx context.Context, sc scopeRequest) (string, error) {
	switch {
	case sc.Domain != nil:
		return "", unauthorized("domain scopes are not supported")
	case sc.Project == nil:
		return "", missing("project", "scope")
	case sc.Project.ID != "":
		return h.enabledProject(ctx, sc.Project.ID)
	case sc.Project.Name == "":
		return "", missing("id or name", "project")
	case sc.Project.Domain == nil:
		return "", missing("domain", "project")
	case !sc.Project.Domain.isDefault():
		return "", unauthorized("unknown project domain")
	}
	p, err := h.id.ProjectByName(ctx, sc.Project.Name)
	if errors.Is(err, auth.ErrNotFound) {
		return "", unauthorized("unknown project")
	}
	if err != nil {
		return "", err
	}
	return h.enabledProject(ctx, p.ID)
}

// enabledProject returns pid if it names an enabled project; a token cannot be scoped to
// anything else.
func (h *Handler) enabledProject(ctx context.Context, pid string) (string, error) {
	p, err := h.id.GetProject(ctx, pid)
	if errors.Is(err, auth.ErrNotFound) || (err == nil && !p.Enabled) {
		return "", unauthorized("unknown or disabled project")
	}
	return p.ID, err
}

func (h *Handler) defaultProject(ctx context.Context, u auth.User) (string, error) {
	if u.DefaultProjectID == "" {
		return "", nil
	}
	p, err := h.id.GetProject(ctx, u.DefaultProjectID)
	if errors.Is(err, auth.ErrNotFound) || (err == nil && !p.Enabled) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	roles, err := h.id.RolesOn(ctx, u.ID, p.ID)
	if err != nil || len(roles) == 0 {
		return "", err
	}
	return p.ID, nil
}

func mergeMethods(a, b []string) []string {
	out := append([]string{}, a...)
	for _, m := range b {
		found := false
		for _, x := range out {
			found = found || x == m
		}
		if !found {
			out = append(out, m)
		}
	}
	return out
}
