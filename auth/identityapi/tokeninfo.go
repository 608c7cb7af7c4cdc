package identityapi

import (
	"errors"
	"net/http"

	"github.com/xloud/xloud-image/auth"
)

// subject validates the X-Subject-Token of r: 404 when it is not a valid token.
func (h *Handler) subject(r *http.Request) (auth.Token, string, error) {
	secret := r.Header.Get("X-Subject-Token")
	t, err := h.id.ValidateToken(r.Context(), secret)
	if err != nil && (auth.IsAuthError(err) || errors.Is(err, auth.ErrNotFound)) {
		return t, secret, &Error{Status: http.StatusNotFound, Message: "Failed to validate token"}
	}
	return t, secret, err
}

// handleGetToken validates the X-Subject-Token (GET and HEAD /v3/auth/tokens): its owner
// or an admin may; 404 when it is not valid.
func (h *Handler) handleGetToken(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	t, secret, err := h.subject(r)
	if err != nil {
		return err
	}
	if err := h.allow(r, caller, auth.IdentityValidateToken, auth.IdentityTarget{UserID: t.UserID}); err != nil {
		return err
	}
	w.Header().Set("X-Subject-Token", secret)
	return writeJSON(w, r, http.StatusOK, map[string]any{"token": tokenOut(t, h.catalogFor(r, t))})
}

// handleRevokeToken revokes the X-Subject-Token (DELETE /v3/auth/tokens).
func (h *Handler) handleRevokeToken(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	t, secret, err := h.subject(r)
	if err != nil {
		return err
	}
	if err := h.allow(r, caller, auth.IdentityRevokeToken, auth.IdentityTarget{UserID: t.UserID}); err != nil {
		return err
	}
	if err := h.id.RevokeToken(r.Context(), secret); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleGetCatalog answers GET /v3/auth/catalog; only a project- or system-scoped token has a
// catalog.
func (h *Handler) handleGetCatalog(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if caller.ProjectID == "" && !caller.System {
		return &Error{Status: http.StatusForbidden, Message: "A project-scoped token is required to produce a service catalog."}
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"catalog": h.catalog(r), "links": collectionLinks(r, h.v3(r))})
}

// handleListAuthProjects answers GET /v3/auth/projects: the enabled projects the caller holds
// a role on, the projects it may scope to.
func (h *Handler) handleListAuthProjects(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	ps, err := h.userProjects(r.Context(), caller.UserID)
	if err != nil {
		return err
	}
	out := []projectJSON{}
	for _, p := range ps {
		if p.Enabled {
			out = append(out, projectOut(h.v3(r), p))
		}
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"projects": out, "links": collectionLinks(r, h.v3(r))})
}

// handleListAuthDomains answers GET /v3/auth/domains: there are no domain role assignments.
func (h *Handler) handleListAuthDomains(w http.ResponseWriter, r *http.Request, _ auth.Token) error {
	return writeJSON(w, r, http.StatusOK, map[string]any{"domains": []domainJSON{}, "links": collectionLinks(r, h.v3(r))})
}
