package auth

import (
	"context"
	"errors"
	"strings"
)

// Action is what a caller wants to do to a repository (the registry token scope grammar).
type Action string

// Registry actions.
const (
	ActionPull   Action = "pull"
	ActionPush   Action = "push"
	ActionDelete Action = "delete"
)

// Principal is whoever made a request.
type Principal struct {
	Anonymous bool
	UserID    string
	UserName  string
	// Scoped principals (a project-scoped token) hold roles on ProjectID only; unscoped ones
	// (user name and password) hold whatever roles they are assigned.
	Scoped      bool
	ProjectID   string
	ScopedRoles []Role
	// Admin holds the admin role, which is cloud-wide under the default policies.
	Admin bool
}

// Anonymous is the principal of a request without credentials.
var Anonymous = Principal{Anonymous: true}

// Directory answers the identity questions the policy asks; the embedded Identity and the
// external Keystone client both implement it.
type Directory interface {
	GetProject(ctx context.Context, id string) (Project, error)
	ProjectByName(ctx context.Context, name string) (Project, error)
	RolesOn(ctx context.Context, userID, projectID string) ([]Role, error)
}

// Policy is the one access decision both APIs call. It follows Glance's and Keystone's
// default policies: admin may do everything; a project's readers may read, its members may
// also write; anonymous callers only read what is public, and only when allowed.
type Policy struct {
	Directory     Directory
	AnonymousPull bool
	// ContentReadable reports whether pr may read some image whose content is in repo
	// (public, community, shared with the caller's project): the catalog's answer, so
	// readers of an image can pull it from a repository of another project.
	ContentReadable func(ctx context.Context, pr Principal, repo string) (bool, error)
}

// RepositoryProject returns the project owning repo: its first path component, which names
// the project (case-insensitively) or is its id.
func (p *Policy) RepositoryProject(ctx context.Context, repo string) (Project, error) {
	first, _, _ := strings.Cut(repo, "/")
	proj, err := p.Directory.ProjectByName(ctx, first)
	if errors.Is(err, ErrNotFound) {
		proj, err = p.Directory.GetProject(ctx, first)
	}
	if err == nil && !proj.Enabled {
		return proj, ErrNotFound
	}
	return proj, err
}

// RolesOn returns the roles pr holds on project.
func (p *Policy) RolesOn(ctx context.Context, pr Principal, projectID string) ([]Role, error) {
	switch {
	case pr.Anonymous:
		return nil, nil
	case pr.Scoped && pr.ProjectID == projectID:
		return pr.ScopedRoles, nil
	case pr.Scoped:
		return nil, nil
	}
	return p.Directory.RolesOn(ctx, pr.UserID, projectID)
}

func hasRole(roles []Role, want ...Role) bool {
	for _, r := range roles {
		for _, w := range want {
			if r == w {
				return true
			}
		}
	}
	return false
}

// AllowRepository decides whether pr may act on repo.
func (p *Policy) AllowRepository(ctx context.Context, pr Principal, repo string, act Action) (bool, error) {
	if pr.Admin {
		return true, nil
	}
	if act == ActionPull && p.ContentReadable != nil {
		if ok, err := p.ContentReadable(ctx, pr, repo); ok || err != nil {
			return ok, err
		}
	}
	if pr.Anonymous {
		return false, nil
	}
	proj, err := p.RepositoryProject(ctx, repo)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	roles, err := p.RolesOn(ctx, pr, proj.ID)
	if err != nil {
		return false, err
	}
	if act == ActionPull {
		return hasRole(roles, RoleReader, RoleMember, RoleAdmin), nil
	}
	return hasRole(roles, RoleMember, RoleAdmin), nil
}

// Grant returns the subset of actions pr may take on repo, for a registry token.
func (p *Policy) Grant(ctx context.Context, pr Principal, repo string, actions []string) ([]string, error) {
	granted := []string{}
	for _, a := range actions {
		act := Action(a)
		if a == "*" {
			for _, each := range []Action{ActionPull, ActionPush, ActionDelete} {
				if ok, err := p.AllowRepository(ctx, pr, repo, each); err != nil {
					return nil, err
				} else if ok {
					granted = append(granted, string(each))
				}
			}
			continue
		}
		if act != ActionPull && act != ActionPush && act != ActionDelete {
			continue
		}
		ok, err := p.AllowRepository(ctx, pr, repo, act)
		if err != nil {
			return nil, err
		}
		if ok {
			granted = append(granted, a)
		}
	}
	return granted, nil
}
