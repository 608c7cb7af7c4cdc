package imageapi

import (
	"net/http"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
)

// getImportInfo is GET /v2/info/import: the enabled import methods (§1.8).
func (a *API) getImportInfo(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	return writeJSON(w, http.StatusOK, map[string]any{"import-methods": map[string]any{
		"description": "Import methods available.", "type": "array", "value": a.cat.ImportMethods(),
	}})
}

// getStoresInfo is GET /v2/info/stores (§5.6): the configured --store set, Glance's shape
// (default: "true" on the default store). A server run without --store has no multi-store
// API and answers 404 as Glance does without enabled_backends; the openstack CLI then says
// "Multi Backend support not enabled".
func (a *API) getStoresInfo(w http.ResponseWriter, _ *http.Request, _ auth.Principal) error {
	stores := a.cat.Stores()
	if stores == nil {
		return errNoMultiStore
	}
	return writeJSON(w, http.StatusOK, map[string]any{"stores": storesJSON(stores, false)})
}

// getStoresDetail is GET /v2/info/stores/detail (API 2.15): the stores with their type
// and properties (never credentials), for admins.
func (a *API) getStoresDetail(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if a.cat.Stores() == nil {
		return errNoMultiStore
	}
	stores, err := a.cat.StoresDetail(r.Context(), pr)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"stores": storesJSON(stores, true)})
}

var errNoMultiStore = errorf(http.StatusNotFound, "Multi backend is not supported at this site.")

func storesJSON(stores []catalog.StoreInfo, detail bool) []map[string]any {
	out := []map[string]any{}
	for _, s := range stores {
		m := map[string]any{"id": s.ID, "description": s.Description}
		if s.Default {
			m["default"] = "true"
		}
		if detail {
			m["type"], m["weight"], m["properties"] = s.Type, 0, s.Properties
		}
		out = append(out, m)
	}
	return out
}

// deleteFromStore is DELETE /v2/stores/{store_id}/{image_id} (API 2.10): the image's data
// leaves one store; 204.
func (a *API) deleteFromStore(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.cat.DeleteFromStore(r.Context(), pr, r.PathValue("store"), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// getUsage is GET /v2/info/usage (API 2.13): the limits and usage of the caller's project,
// sizes in MiB. Without unified limits Glance answers an empty usage document, and so does
// this.
func (a *API) getUsage(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	u, err := a.cat.Usage(r.Context(), pr.ProjectID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"usage": u})
}
