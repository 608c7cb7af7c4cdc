package identityapi

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/xloud/xloud-image/auth"
)

// handleListRoleAssignments answers GET /v3/role_assignments, filtered by user.id,
// scope.project.id and role.id; include_names adds names, effective expands implied roles.
// Groups, domain and system scopes and inheritance do not exist here: asking for them gives
// an empty list. Admins may list everything; users their own assignments (user.id=self).
func (h *Handler) handleListRoleAssignments(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	q := r.URL.Query()
	uid, pid := q.Get("user.id"), q.Get("scope.project.id")
	if err := h.allow(r, caller, auth.IdentityListRoleAssignments, auth.IdentityTarget{UserID: uid}); err != nil {
		return err
	}
	out := []assignmentJSON{}
	if q.Has("group.id") || q.Has("scope.domain.id") || q.Has("scope.OS-INHERIT:inherited_to") ||
		(q.Has("scope.system") && q.Get("scope.system") != "all") || (q.Has("scope.system") && pid != "") {
		return h.writeAssignments(w, r, out)
	}
	var as []auth.Assignment
	if !q.Has("scope.system") {
		var err error
		if as, err = h.id.Assignments(r.Context(), uid, pid); err != nil {
			return err
		}
	}
	if pid == "" { // the system's assignments, ProjectID empty
		sys, err := h.id.SystemAssignments(r.Context(), uid)
		if err != nil {
			return err
		}
		as = append(as, sys...)
	}
	if flag(r, "effective") {
		as = effective(as)
	}
	sortAssignments(as)
	names := newNamer(h.id, flag(r, "include_names"))
	for _, a := range as {
		if q.Has("role.id") && q.Get("role.id") != auth.RoleID(a.Role) {
			continue
		}
		e, err := h.assignmentOut(r, names, a)
		if errors.Is(err, auth.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		out = append(out, e)
	}
	return h.writeAssignments(w, r, out)
}

func (h *Handler) writeAssignments(w http.ResponseWriter, r *http.Request, out []assignmentJSON) error {
	return writeJSON(w, r, http.StatusOK, map[string]any{"role_assignments": out, "links": collectionLinks(r, h.v3(r))})
}

func (h *Handler) assignmentOut(r *http.Request, names *namer, a auth.Assignment) (assignmentJSON, error) {
	var e assignmentJSON
	e.Role = assignmentRef{ID: auth.RoleID(a.Role)}
	e.User = assignmentRef{ID: a.UserID}
	if a.ProjectID == "" {
		e.Scope.System = map[string]bool{"all": true}
		e.Links.Assignment = h.v3(r) + "/system/users/" + a.UserID + "/roles/" + auth.RoleID(a.Role)
	} else {
		e.Scope.Project = &assignmentRef{ID: a.ProjectID}
		e.Links.Assignment = h.v3(r) + "/projects/" + a.ProjectID + "/users/" + a.UserID + "/roles/" + auth.RoleID(a.Role)
	}
	if !names.on {
		return e, nil
	}
	u, err := names.user(r.Context(), a.UserID)
	if err != nil {
		return e, err
	}
	e.Role.Name = string(a.Role)
	e.User.Name, e.User.Domain = u.Name, &defaultDomain
	if a.ProjectID == "" {
		return e, nil
	}
	p, err := names.project(r.Context(), a.ProjectID)
	if err != nil {
		return e, err
	}
	e.Scope.Project.Name, e.Scope.Project.Domain = p.Name, &defaultDomain
	return e, nil
}

// effective adds the roles the assigned ones imply, without duplicates.
func effective(as []auth.Assignment) []auth.Assignment {
	type key struct{ user, project string }
	byPair := map[key][]auth.Role{}
	var order []key
	for _, a := range as {
		k := key{a.UserID, a.ProjectID}
		if _, ok := byPair[k]; !ok {
			order = append(order, k)
		}
		byPair[k] = append(byPair[k], a.Role)
	}
	var out []auth.Assignment
	for _, k := range order {
		for _, r := range impliedRoles(byPair[k]) {
			out = append(out, auth.Assignment{UserID: k.user, ProjectID: k.project, Role: r})
		}
	}
	return out
}

func sortAssignments(as []auth.Assignment) {
	rank := func(r auth.Role) int { return slices.Index(auth.Roles, r) }
	slices.SortFunc(as, func(a, b auth.Assignment) int {
		return cmp.Or(cmp.Compare(a.ProjectID, b.ProjectID), cmp.Compare(a.UserID, b.UserID), cmp.Compare(rank(a.Role), rank(b.Role)))
	})
}

// namer looks users and projects up once per request.
type namer struct {
	on       bool
	id       *auth.Identity
	users    map[string]auth.User
	projects map[string]auth.Project
}

func newNamer(id *auth.Identity, on bool) *namer {
	return &namer{on: on, id: id, users: map[string]auth.User{}, projects: map[string]auth.Project{}}
}

func (n *namer) user(ctx context.Context, id string) (auth.User, error) {
	if u, ok := n.users[id]; ok {
		return u, nil
	}
	u, err := n.id.GetUser(ctx, id)
	if err == nil {
		n.users[id] = u
	}
	return u, err
}

func (n *namer) project(ctx context.Context, id string) (auth.Project, error) {
	if p, ok := n.projects[id]; ok {
		return p, nil
	}
	p, err := n.id.GetProject(ctx, id)
	if err == nil {
		n.projects[id] = p
	}
	return p, err
}
