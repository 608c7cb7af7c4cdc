package identityapi

import (
	"net/http"
	"strings"

	"github.com/xloud/xloud-image/auth"
)

// handleListRoles answers GET /v3/roles, filtered by name (admins only).
func (h *Handler) handleListRoles(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityListRoles, auth.IdentityTarget{}); err != nil {
		return err
	}
	q := r.URL.Query()
	out := []roleJSON{}
	for _, role := range auth.Roles {
		if q.Has("name") && !strings.EqualFold(q.Get("name"), string(role)) {
			continue
		}
		if q.Has("domain_id") && q.Get("domain_id") != "" {
			continue // the default roles are global
		}
		out = append(out, roleOut(h.v3(r), role))
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"roles": out, "links": collectionLinks(r, h.v3(r))})
}

// handleGetRole answers GET /v3/roles/{id} (admins only).
func (h *Handler) handleGetRole(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityGetRole, auth.IdentityTarget{}); err != nil {
		return err
	}
	role, ok := roleByID(r.PathValue("role"))
	if !ok {
		return notFound("role", r.PathValue("role"))
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"role": roleOut(h.v3(r), role)})
}

// handleListDomains answers GET /v3/domains, filtered by name and enabled (admins only):
// the one domain.
func (h *Handler) handleListDomains(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityListDomains, auth.IdentityTarget{}); err != nil {
		return err
	}
	q := r.URL.Query()
	out := []domainJSON{}
	if (!q.Has("name") || strings.EqualFold(q.Get("name"), auth.DefaultDomainName)) &&
		(!q.Has("enabled") || flag(r, "enabled")) {
		out = append(out, domainOut(h.v3(r)))
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"domains": out, "links": collectionLinks(r, h.v3(r))})
}

// handleGetDomain answers GET /v3/domains/default, to anyone authenticated.
func (h *Handler) handleGetDomain(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityGetDomain, auth.IdentityTarget{}); err != nil {
		return err
	}
	if r.PathValue("domain") != auth.DefaultDomainID {
		return notFound("domain", r.PathValue("domain"))
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"domain": domainOut(h.v3(r))})
}
