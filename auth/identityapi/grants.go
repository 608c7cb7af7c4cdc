package identityapi

import (
	"net/http"
	"slices"

	"github.com/xloud/xloud-image/auth"
)

// grant is the project, user and role named by a grant URL
// (/v3/projects/{project}/users/{user}/roles/{role}), each checked to exist.
type grant struct {
	project auth.Project
	user    auth.User
	role    auth.Role
}

// parseGrant asks the policy first (so a refused caller learns nothing about what exists),
// then resolves the path; withRole says whether the path names a role.
func (h *Handler) parseGrant(r *http.Request, caller auth.Token, act auth.IdentityAction, withRole bool) (grant, error) {
	var g grant
	pid, uid := r.PathValue("project"), r.PathValue("user")
	if err := h.allow(r, caller, act, auth.IdentityTarget{UserID: uid, ProjectID: pid}); err != nil {
		return g, err
	}
	var err error
	if g.project, err = h.project(r.Context(), pid); err != nil {
		return g, err
	}
	if g.user, err = h.user(r.Context(), uid); err != nil {
		return g, err
	}
	if withRole {
		var ok bool
		if g.role, ok = roleByID(r.PathValue("role")); !ok {
			return g, notFound("role", r.PathValue("role"))
		}
	}
	return g, nil
}

// handleCreateGrant answers PUT /v3/projects/{p}/users/{u}/roles/{r} (admins only): 204.
func (h *Handler) handleCreateGrant(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	g, err := h.parseGrant(r, caller, auth.IdentityCreateGrant, true)
	if err != nil {
		return err
	}
	if err := h.id.Grant(r.Context(), g.user.ID, g.project.ID, g.role); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleCheckGrant answers HEAD and GET /v3/projects/{p}/users/{u}/roles/{r}: 204 when the
// user holds the role directly, else 404.
func (h *Handler) handleCheckGrant(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if _, err := h.heldGrant(r, caller, auth.IdentityCheckGrant); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// heldGrant parses a grant path and checks the user holds the role directly (else 404).
func (h *Handler) heldGrant(r *http.Request, caller auth.Token, act auth.IdentityAction) (grant, error) {
	g, err := h.parseGrant(r, caller, act, true)
	if err != nil {
		return g, err
	}
	roles, err := h.id.RolesOn(r.Context(), g.user.ID, g.project.ID)
	if err != nil {
		return g, err
	}
	if !slices.Contains(roles, g.role) {
		return g, h.assignmentNotFound(g)
	}
	return g, nil
}

func (h *Handler) assignmentNotFound(g grant) error {
	return &Error{Status: http.StatusNotFound, Message: "Could not find role assignment with role: " +
		auth.RoleID(g.role) + ", user or group: " + g.user.ID + ", project, domain, or system: " + g.project.ID + "."}
}

// handleRevokeGrant answers DELETE /v3/projects/{p}/users/{u}/roles/{r} (admins only): 204,
// or 404 when the user does not hold the role.
func (h *Handler) handleRevokeGrant(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	g, err := h.heldGrant(r, caller, auth.IdentityRevokeGrant)
	if err != nil {
		return err
	}
	if err := h.id.Revoke(r.Context(), g.user.ID, g.project.ID, g.role); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleListGrants answers GET /v3/projects/{p}/users/{u}/roles: the roles the user holds
// directly on the project (admins only).
func (h *Handler) handleListGrants(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	g, err := h.parseGrant(r, caller, auth.IdentityListGrants, false)
	if err != nil {
		return err
	}
	roles, err := h.id.RolesOn(r.Context(), g.user.ID, g.project.ID)
	if err != nil {
		return err
	}
	out := []roleJSON{}
	for _, role := range auth.Roles { // strongest first, as everywhere
		if slices.Contains(roles, role) {
			out = append(out, roleOut(h.v3(r), role))
		}
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"roles": out, "links": collectionLinks(r, h.v3(r))})
}
