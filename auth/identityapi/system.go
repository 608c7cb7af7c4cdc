package identityapi

import (
	"net/http"
	"slices"

	"github.com/xloud/xloud-image/auth"
)

// systemGrant is the user and role named by a system grant URL
// (/v3/system/users/{user}/roles/{role}), each checked to exist after the policy allowed it.
func (h *Handler) systemGrant(r *http.Request, caller auth.Token, act auth.IdentityAction, withRole bool) (auth.User, auth.Role, error) {
	uid := r.PathValue("user")
	if err := h.allow(r, caller, act, auth.IdentityTarget{UserID: uid}); err != nil {
		return auth.User{}, "", err
	}
	u, err := h.user(r.Context(), uid)
	if err != nil || !withRole {
		return u, "", err
	}
	role, ok := roleByID(r.PathValue("role"))
	if !ok {
		return u, "", notFound("role", r.PathValue("role"))
	}
	return u, role, nil
}

// heldSystemGrant parses a system grant path and checks the user holds the role (else 404).
func (h *Handler) heldSystemGrant(r *http.Request, caller auth.Token, act auth.IdentityAction) (auth.User, auth.Role, error) {
	u, role, err := h.systemGrant(r, caller, act, true)
	if err != nil {
		return u, role, err
	}
	roles, err := h.id.SystemRoles(r.Context(), u.ID)
	if err != nil {
		return u, role, err
	}
	if !slices.Contains(roles, role) {
		return u, role, &Error{Status: http.StatusNotFound, Message: "Could not find role assignment with role: " +
			auth.RoleID(role) + ", user or group: " + u.ID + ", project, domain, or system: system."}
	}
	return u, role, nil
}

// handleCreateSystemGrant answers PUT /v3/system/users/{u}/roles/{r} (admins only): 204.
func (h *Handler) handleCreateSystemGrant(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	u, role, err := h.systemGrant(r, caller, auth.IdentityCreateSystemGrant, true)
	if err != nil {
		return err
	}
	if err := h.id.GrantSystem(r.Context(), u.ID, role); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleCheckSystemGrant answers HEAD and GET /v3/system/users/{u}/roles/{r}: 204 when the
// user holds the role on the system, else 404.
func (h *Handler) handleCheckSystemGrant(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if _, _, err := h.heldSystemGrant(r, caller, auth.IdentityCheckSystemGrant); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleRevokeSystemGrant answers DELETE /v3/system/users/{u}/roles/{r} (admins only): 204,
// or 404 when the user does not hold the role. The user's system tokens lose it at once.
func (h *Handler) handleRevokeSystemGrant(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	u, role, err := h.heldSystemGrant(r, caller, auth.IdentityRevokeSystemGrant)
	if err != nil {
		return err
	}
	if err := h.id.RevokeSystem(r.Context(), u.ID, role); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleListSystemGrants answers GET /v3/system/users/{u}/roles: the roles the user holds on
// the system.
func (h *Handler) handleListSystemGrants(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	u, _, err := h.systemGrant(r, caller, auth.IdentityListSystemGrants, false)
	if err != nil {
		return err
	}
	roles, err := h.id.SystemRoles(r.Context(), u.ID)
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
