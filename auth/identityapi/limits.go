package identityapi

import (
	"net/http"
	"slices"

	"github.com/xloud/xloud-image/auth"
)

// Keystone's unified limits (api-ref identity/v3 "Unified Limits"): registered limits (a
// service's default per resource) and limits (one project's own), flat model only.

type registeredLimitJSON struct {
	ID           string  `json:"id"`
	ServiceID    string  `json:"service_id"`
	RegionID     *string `json:"region_id"`
	ResourceName string  `json:"resource_name"`
	DefaultLimit int64   `json:"default_limit"`
	Description  *string `json:"description"`
	Links        links   `json:"links"`
}

type limitJSON struct {
	ID            string  `json:"id"`
	ProjectID     string  `json:"project_id"`
	DomainID      *string `json:"domain_id"`
	ServiceID     string  `json:"service_id"`
	RegionID      *string `json:"region_id"`
	ResourceName  string  `json:"resource_name"`
	ResourceLimit int64   `json:"resource_limit"`
	Description   *string `json:"description"`
	Links         links   `json:"links"`
}

// limitRequest is one element of a create body or the object of an update body; pointers
// tell absent fields from zero ones.
type limitRequest struct {
	ServiceID     *string   `json:"service_id"`
	RegionID      optString `json:"region_id"`
	ResourceName  *string   `json:"resource_name"`
	DefaultLimit  *int64    `json:"default_limit"`
	ProjectID     *string   `json:"project_id"`
	DomainID      optString `json:"domain_id"`
	ResourceLimit *int64    `json:"resource_limit"`
	Description   optString `json:"description"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func registeredOut(v3 string, l auth.RegisteredLimit) registeredLimitJSON {
	return registeredLimitJSON{ID: l.ID, ServiceID: l.ServiceID, RegionID: nullable(l.RegionID),
		ResourceName: l.ResourceName, DefaultLimit: l.DefaultLimit, Description: nullable(l.Description),
		Links: links{Self: v3 + "/registered_limits/" + l.ID}}
}

func limitOut(v3 string, l auth.ProjectLimit) limitJSON {
	return limitJSON{ID: l.ID, ProjectID: l.ProjectID, ServiceID: l.ServiceID, RegionID: nullable(l.RegionID),
		ResourceName: l.ResourceName, ResourceLimit: l.ResourceLimit, Description: nullable(l.Description),
		Links: links{Self: v3 + "/limits/" + l.ID}}
}

// checkServiceRegion refuses a service or region this identity service does not know.
func (h *Handler) checkServiceRegion(r *http.Request, service, region string) error {
	if !slices.ContainsFunc(h.catalog(r), func(e catalogEntry) bool { return e.ID == service }) {
		return badRequest("Invalid input for field 'service_id': no service with ID %s.", service)
	}
	if region != "" && region != h.opt.Region {
		return badRequest("Invalid input for field 'region_id': no region with ID %s.", region)
	}
	return nil
}

// handleCreateRegisteredLimits answers POST /v3/registered_limits (admins only): all of the
// body's limits are created, or none.
func (h *Handler) handleCreateRegisteredLimits(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityWriteRegisteredLimit, auth.IdentityTarget{}); err != nil {
		return err
	}
	var body struct {
		RegisteredLimits []limitRequest `json:"registered_limits"`
	}
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if len(body.RegisteredLimits) == 0 {
		return missing("registered_limits", "request body")
	}
	var in []auth.RegisteredLimit
	for _, q := range body.RegisteredLimits {
		switch {
		case q.ServiceID == nil:
			return missing("service_id", "registered_limit")
		case q.ResourceName == nil:
			return missing("resource_name", "registered_limit")
		case q.DefaultLimit == nil:
			return missing("default_limit", "registered_limit")
		}
		if err := h.checkServiceRegion(r, *q.ServiceID, q.RegionID.Value); err != nil {
			return err
		}
		in = append(in, auth.RegisteredLimit{ServiceID: *q.ServiceID, RegionID: q.RegionID.Value,
			ResourceName: *q.ResourceName, DefaultLimit: *q.DefaultLimit, Description: q.Description.Value})
	}
	out, err := h.opt.Limits.CreateRegistered(r.Context(), in)
	if err != nil {
		return err
	}
	list := []registeredLimitJSON{}
	for _, l := range out {
		list = append(list, registeredOut(h.v3(r), l))
	}
	return writeJSON(w, r, http.StatusCreated, map[string]any{"registered_limits": list})
}

// handleListRegisteredLimits answers GET /v3/registered_limits, filtered by service_id,
// region_id and resource_name, to anyone authenticated.
func (h *Handler) handleListRegisteredLimits(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityListRegisteredLimits, auth.IdentityTarget{}); err != nil {
		return err
	}
	all, err := h.opt.Limits.ListRegistered(r.Context())
	if err != nil {
		return err
	}
	q := r.URL.Query()
	list := []registeredLimitJSON{}
	for _, l := range all {
		if filtered(q.Get("service_id"), l.ServiceID) || filtered(q.Get("region_id"), l.RegionID) ||
			filtered(q.Get("resource_name"), l.ResourceName) {
			continue
		}
		list = append(list, registeredOut(h.v3(r), l))
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"registered_limits": list, "links": collectionLinks(r, h.v3(r))})
}

// filtered reports whether a query filter (empty: none) excludes value.
func filtered(want, value string) bool { return want != "" && want != value }

// handleGetRegisteredLimit answers GET /v3/registered_limits/{id}.
func (h *Handler) handleGetRegisteredLimit(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityGetRegisteredLimit, auth.IdentityTarget{}); err != nil {
		return err
	}
	l, err := h.opt.Limits.GetRegistered(r.Context(), r.PathValue("id"))
	if err != nil {
		return notFoundAs(err, "registered limit", r.PathValue("id"))
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"registered_limit": registeredOut(h.v3(r), l)})
}

// handleUpdateRegisteredLimit answers PATCH /v3/registered_limits/{id} (admins only).
func (h *Handler) handleUpdateRegisteredLimit(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityWriteRegisteredLimit, auth.IdentityTarget{}); err != nil {
		return err
	}
	var body struct {
		RegisteredLimit *limitRequest `json:"registered_limit"`
	}
	if err := decode(w, r, &body); err != nil {
		return err
	}
	q := body.RegisteredLimit
	if q == nil {
		return missing("registered_limit", "request body")
	}
	l, err := h.opt.Limits.UpdateRegistered(r.Context(), r.PathValue("id"), func(l *auth.RegisteredLimit) error {
		if q.ServiceID != nil {
			l.ServiceID = *q.ServiceID
		}
		if q.RegionID.Set {
			l.RegionID = q.RegionID.Value
		}
		if q.ResourceName != nil {
			l.ResourceName = *q.ResourceName
		}
		if q.DefaultLimit != nil {
			l.DefaultLimit = *q.DefaultLimit
		}
		if q.Description.Set {
			l.Description = q.Description.Value
		}
		return h.checkServiceRegion(r, l.ServiceID, l.RegionID)
	})
	if err != nil {
		return notFoundAs(err, "registered limit", r.PathValue("id"))
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"registered_limit": registeredOut(h.v3(r), l)})
}

// handleDeleteRegisteredLimit answers DELETE /v3/registered_limits/{id} (admins only).
func (h *Handler) handleDeleteRegisteredLimit(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityWriteRegisteredLimit, auth.IdentityTarget{}); err != nil {
		return err
	}
	if err := h.opt.Limits.DeleteRegistered(r.Context(), r.PathValue("id")); err != nil {
		return notFoundAs(err, "registered limit", r.PathValue("id"))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleCreateLimits answers POST /v3/limits (admins only): project limits, all or none.
func (h *Handler) handleCreateLimits(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityWriteLimit, auth.IdentityTarget{}); err != nil {
		return err
	}
	var body struct {
		Limits []limitRequest `json:"limits"`
	}
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if len(body.Limits) == 0 {
		return missing("limits", "request body")
	}
	var in []auth.ProjectLimit
	for _, q := range body.Limits {
		switch {
		case q.DomainID.Value != "":
			return badRequest("Domain limits are not supported.")
		case q.ProjectID == nil:
			return missing("project_id", "limit")
		case q.ServiceID == nil:
			return missing("service_id", "limit")
		case q.ResourceName == nil:
			return missing("resource_name", "limit")
		case q.ResourceLimit == nil:
			return missing("resource_limit", "limit")
		}
		if err := h.checkServiceRegion(r, *q.ServiceID, q.RegionID.Value); err != nil {
			return err
		}
		if _, err := h.id.GetProject(r.Context(), *q.ProjectID); err != nil {
			return badRequest("Invalid input for field 'project_id': no project with ID %s.", *q.ProjectID)
		}
		in = append(in, auth.ProjectLimit{ProjectID: *q.ProjectID, ServiceID: *q.ServiceID, RegionID: q.RegionID.Value,
			ResourceName: *q.ResourceName, ResourceLimit: *q.ResourceLimit, Description: q.Description.Value})
	}
	out, err := h.opt.Limits.CreateProjectLimits(r.Context(), in)
	if err != nil {
		return err
	}
	list := []limitJSON{}
	for _, l := range out {
		list = append(list, limitOut(h.v3(r), l))
	}
	return writeJSON(w, r, http.StatusCreated, map[string]any{"limits": list})
}

// handleListLimits answers GET /v3/limits, filtered by service_id, region_id,
// resource_name and project_id: admins see every project's, others their token's project's.
func (h *Handler) handleListLimits(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	all, err := h.opt.Limits.ListProjectLimits(r.Context())
	if err != nil {
		return err
	}
	q := r.URL.Query()
	list := []limitJSON{}
	for _, l := range all {
		if filtered(q.Get("service_id"), l.ServiceID) || filtered(q.Get("region_id"), l.RegionID) ||
			filtered(q.Get("resource_name"), l.ResourceName) || filtered(q.Get("project_id"), l.ProjectID) {
			continue
		}
		ok, err := h.pol.AllowIdentity(r.Context(), caller.Principal(), auth.IdentityListLimits,
			auth.IdentityTarget{ProjectID: l.ProjectID})
		if err != nil {
			return err
		}
		if ok {
			list = append(list, limitOut(h.v3(r), l))
		}
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"limits": list, "links": collectionLinks(r, h.v3(r))})
}

// handleGetLimit answers GET /v3/limits/{id}; a limit of another project answers as missing.
func (h *Handler) handleGetLimit(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	l, err := h.opt.Limits.GetProjectLimit(r.Context(), r.PathValue("id"))
	if err != nil {
		return notFoundAs(err, "limit", r.PathValue("id"))
	}
	if err := h.allow(r, caller, auth.IdentityGetLimit, auth.IdentityTarget{ProjectID: l.ProjectID}); err != nil {
		return err
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"limit": limitOut(h.v3(r), l)})
}

// handleUpdateLimit answers PATCH /v3/limits/{id} (admins only): the limit and the
// description may change.
func (h *Handler) handleUpdateLimit(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityWriteLimit, auth.IdentityTarget{}); err != nil {
		return err
	}
	var body struct {
		Limit *limitRequest `json:"limit"`
	}
	if err := decode(w, r, &body); err != nil {
		return err
	}
	q := body.Limit
	if q == nil {
		return missing("limit", "request body")
	}
	if q.ProjectID != nil || q.ServiceID != nil || q.ResourceName != nil || q.RegionID.Set || q.DomainID.Set {
		return badRequest("Invalid input for field 'limit': only resource_limit and description may be updated.")
	}
	l, err := h.opt.Limits.UpdateProjectLimit(r.Context(), r.PathValue("id"), func(l *auth.ProjectLimit) error {
		if q.ResourceLimit != nil {
			l.ResourceLimit = *q.ResourceLimit
		}
		if q.Description.Set {
			l.Description = q.Description.Value
		}
		return nil
	})
	if err != nil {
		return notFoundAs(err, "limit", r.PathValue("id"))
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"limit": limitOut(h.v3(r), l)})
}

// handleDeleteLimit answers DELETE /v3/limits/{id} (admins only).
func (h *Handler) handleDeleteLimit(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityWriteLimit, auth.IdentityTarget{}); err != nil {
		return err
	}
	if err := h.opt.Limits.DeleteProjectLimit(r.Context(), r.PathValue("id")); err != nil {
		return notFoundAs(err, "limit", r.PathValue("id"))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleGetLimitModel answers GET /v3/limits/model: the flat model, the only one oslo.limit
// enforces.
func (h *Handler) handleGetLimitModel(w http.ResponseWriter, r *http.Request, caller auth.Token) error {
	if err := h.allow(r, caller, auth.IdentityGetLimitModel, auth.IdentityTarget{}); err != nil {
		return err
	}
	return writeJSON(w, r, http.StatusOK, map[string]any{"model": map[string]string{"name": "flat",
		"description": "Limit enforcement and validation does not take project hierarchy into consideration."}})
}

// notFoundAs gives a missing record Keystone's "Could not find <kind>: <id>."
func notFoundAs(err error, kind, id string) error {
	if errorsIsNotFound(err) {
		return notFound(kind, id)
	}
	return err
}
