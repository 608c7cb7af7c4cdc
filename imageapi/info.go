package imageapi

import (
	"net/http"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
)

// getImportInfo is GET /v2/info/import: the enabled import methods (§1.8).
func (a *API) getImportInfo(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	return writeJSON(w, http.StatusOK, map[string]any{"import-methods": map[string]any{
		"description": "Import methods available.", "type": "array", "value": catalog.ImportMethods,
	}})
}

// getStoresInfo is GET /v2/info/stores. There is one store and no multi-store API
// (X-Image-Meta-Store, copy-image, per-store delete), so this answers 404 as Glance does
// without enabled_backends; the openstack CLI then says "Multi Backend support not enabled".
func (a *API) getStoresInfo(http.ResponseWriter, *http.Request, auth.Principal) error {
	return errorf(http.StatusNotFound, "Multi backend is not supported at this site.")
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
