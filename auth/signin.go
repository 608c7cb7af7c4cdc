package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// SignIn issues Keystone-style tokens for a user name and password, as POST /v3/auth/tokens
// does, for callers that hold a session instead of a token (the dashboard). The tokens it
// issues are validated by the same TokenValidator every API uses.
type SignIn interface {
	// PasswordToken checks user and password (within the lockouts) and issues a token scoped
	// to project (a name or an id; empty: the user's first project). Every refusal — unknown
	// user, wrong password, no role on the project — is ErrUnauthorized, alike.
	PasswordToken(ctx context.Context, addr, user, password, project string) (secret string, t Token, err error)
	// Rescope issues a token for the user of secret scoped to another project.
	Rescope(ctx context.Context, secret, project string) (string, Token, error)
	// RevokeToken ends a token at once.
	RevokeToken(ctx context.Context, secret string) error
	// UserProjects lists the projects a user holds a role on.
	UserProjects(ctx context.Context, userID string) ([]Project, error)
}

// IdentitySignIn signs in against the embedded identity.
type IdentitySignIn struct {
	Identity *Identity
	Throttle *Throttle
}

// PasswordToken implements SignIn.
func (s IdentitySignIn) PasswordToken(ctx context.Context, addr, user, password, project string) (string, Token, error) {
	u, err := s.Throttle.Guard(ctx, user, addr, func() (User, error) { return s.Identity.Authenticate(ctx, user, password) })
	if err != nil {
		return "", Token{}, err
	}
	return s.issue(ctx, u, project)
}

// Rescope implements SignIn.
func (s IdentitySignIn) Rescope(ctx context.Context, secret, project string) (string, Token, error) {
	t, err := s.Identity.ValidateToken(ctx, secret)
	if err != nil {
		return "", Token{}, err
	}
	return s.issue(ctx, t.User, project)
}

func (s IdentitySignIn) issue(ctx context.Context, u User, project string) (string, Token, error) {
	pid, err := s.projectID(ctx, u, project)
	if err != nil {
		return "", Token{}, err
	}
	t, secret, err := s.Identity.IssueToken(ctx, u, pid, []string{"password"}, time.Time{})
	return secret, t, err
}

// projectID resolves a project name or id among the user's projects; one the user holds
// no role on is refused as a wrong password is.
func (s IdentitySignIn) projectID(ctx context.Context, u User, project string) (string, error) {
	ps, err := s.UserProjects(ctx, u.ID)
	if err != nil {
		return "", err
	}
	for _, p := range ps {
		if project == "" || p.ID == project || p.Name == project {
			return p.ID, nil
		}
	}
	return "", fmt.Errorf("%w: no role on project %q", ErrUnauthorized, project)
}

// RevokeToken implements SignIn.
func (s IdentitySignIn) RevokeToken(ctx context.Context, secret string) error {
	return s.Identity.RevokeToken(ctx, secret)
}

// UserProjects implements SignIn: the enabled projects the user is assigned to, by name.
func (s IdentitySignIn) UserProjects(ctx context.Context, userID string) ([]Project, error) {
	as, err := s.Identity.Assignments(ctx, userID, "")
	if err != nil {
		return nil, err
	}
	var out []Project
	for _, a := range as {
		if a.ProjectID == "" || slices.ContainsFunc(out, func(p Project) bool { return p.ID == a.ProjectID }) {
			continue
		}
		p, err := s.Identity.GetProject(ctx, a.ProjectID)
		if errors.Is(err, ErrNotFound) || (err == nil && !p.Enabled) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Project) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	return out, nil
}

// KeystoneSignIn signs in against an external Keystone.
type KeystoneSignIn struct {
	Keystone *Keystone
	Throttle *Throttle
}

// PasswordToken implements SignIn.
func (s KeystoneSignIn) PasswordToken(ctx context.Context, addr, user, password, project string) (string, Token, error) {
	var secret string
	var tok Token
	_, err := s.Throttle.Guard(ctx, user, addr, func() (User, error) {
		var err error
		secret, tok, err = s.Keystone.issue(ctx, user, password, project)
		return tok.User, err
	})
	if err != nil {
		return "", Token{}, err
	}
	if project == "" {
		// Keystone's unscoped token acts on nothing: scope it to the user's first project.
		return s.Rescope(ctx, secret, "")
	}
	return secret, tok, nil
}

// Rescope implements SignIn with Keystone's token method.
func (s KeystoneSignIn) Rescope(ctx context.Context, secret, project string) (string, Token, error) {
	t, err := s.Keystone.ValidateToken(ctx, secret)
	if err != nil {
		return "", Token{}, err
	}
	ps, err := s.UserProjects(ctx, t.UserID)
	if err != nil {
		return "", Token{}, err
	}
	i := slices.IndexFunc(ps, func(p Project) bool { return project == "" || p.ID == project || p.Name == project })
	if i < 0 {
		return "", Token{}, fmt.Errorf("%w: no role on project %q", ErrUnauthorized, project)
	}
	a := map[string]any{
		"identity": map[string]any{"methods": []string{"token"}, "token": map[string]string{"id": secret}},
		"scope":    map[string]any{"project": map[string]string{"id": ps[i].ID}},
	}
	r, err := s.Keystone.send(ctx, http.MethodPost, "/auth/tokens?nocatalog", nil, map[string]any{"auth": a})
	if err != nil {
		return "", Token{}, err
	}
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		return "", Token{}, ErrUnauthorized
	}
	t, err = parseKeystoneToken(r.body)
	return r.header.Get("X-Subject-Token"), t, err
}

// RevokeToken implements SignIn (DELETE /v3/auth/tokens).
func (s KeystoneSignIn) RevokeToken(ctx context.Context, secret string) error {
	r, err := s.Keystone.serviceCall(ctx, http.MethodDelete, "/auth/tokens", http.Header{"X-Subject-Token": {secret}})
	if err != nil {
		return err
	}
	if r.status != http.StatusNoContent && r.status != http.StatusNotFound {
		return r.unexpected("revoke token")
	}
	// This server trusts its cached validation up to --keystone-cache-ttl longer.
	return nil
}

// UserProjects implements SignIn (GET /v3/users/{id}/projects, as the service user).
func (s KeystoneSignIn) UserProjects(ctx context.Context, userID string) ([]Project, error) {
	r, err := s.Keystone.serviceCall(ctx, http.MethodGet, "/users/"+url.PathEscape(userID)+"/projects", nil)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusOK {
		return nil, r.unexpected("list user projects")
	}
	var body struct {
		Projects []ksProject `json:"projects"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		return nil, fmt.Errorf("keystone: list user projects: %w", err)
	}
	var out []Project
	for _, p := range body.Projects {
		if p.Enabled {
			out = append(out, p.project())
		}
	}
	slices.SortFunc(out, func(a, b Project) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	return out, nil
}
