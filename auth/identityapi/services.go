package identityapi

import (
	"errors"
	"net/http"

	"github.com/xloud/xloud-image/auth"
)

// The services and the region of the catalog, read-only: clients resolve `--service glance`
// and `--region RegionOne` through them (openstack registered limit create, limit create).

type serviceJSON struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Name        string `json:"name"`
	Enabled     bool   `json:"enabled"`
	Description string `json:"description"`
	Links       links  `json:"links"`
}

type regionJSON struct {
	ID             string  `json:"id"`
	Description    string  `json:"description"`
	ParentRegionID *string `json:"parent_region_id"`
	Links          links   `json:"links"`
}

func serviceOut(v3 string, e catalogEntry) serviceJSON {
	return serviceJSON{ID: e.ID, Type: e.Type, Name: e.Name, Enabled: true, Links: links{Self: v3 + "/services/" + e.ID}}
}

// handleListServices answers GET /v3/services, filtered by type and name (admins only).
func (h *Handler) handleListServices(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityListServices, auth.IdentityTarget{}); err != nil {
		return err
	}
	q := r.URL.Query()
	out := []serviceJSON{}
	for _, e := range h.catalog(r) {
		if filtered(q.Get("type"), e.Type) || filtered(q.Get("name"), e.Name) {
			continue
		}
		out = append(out, serviceOut(h.v3(r), e))
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"services": out, "links": collectionLinks(r, h.v3(r))})
}

// handleGetService answers GET /v3/services/{id} (admins only).
func (h *Handler) handleGetService(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityGetService, auth.IdentityTarget{}); err != nil {
		return err
	}
	for _, e := range h.catalog(r) {
		if e.ID == r.PathValue("id") {
			return writeJSON(w, r, http.StatusOK, map[string]any{"service": serviceOut(h.v3(r), e)})
		}
	}
	return notFound("service", r.PathValue("id"))
}

func (h *Handler) regionOut(r *http.Request) regionJSON {
	return regionJSON{ID: h.opt.Region, Links: links{Self: h.v3(r) + "/regions/" + h.opt.Region}}
}

// handleListRegions answers GET /v3/regions: the one region.
func (h *Handler) handleListRegions(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityListRegions, auth.IdentityTarget{}); err != nil {
		return err
	}
	out := []regionJSON{}
	if q := r.URL.Query(); !q.Has("parent_region_id") {
		out = append(out, h.regionOut(r))
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"regions": out, "links": collectionLinks(r, h.v3(r))})
}

// handleGetRegion answers GET /v3/regions/{id}.
func (h *Handler) handleGetRegion(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityGetRegion, auth.IdentityTarget{}); err != nil {
		return err
	}
	if r.PathValue("id") != h.opt.Region {
		return notFound("region", r.PathValue("id"))
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"region": h.regionOut(r)})
}

func errorsIsNotFound(err error) bool { return errors.Is(err, auth.ErrNotFound) }
