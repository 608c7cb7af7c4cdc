package identityapi

import "net/http"

// versionJSON is the v3 entry of Keystone's version discovery (keystone/api/discovery.py).
type versionJSON struct {
	ID         string         `json:"id"`
	Status     string         `json:"status"`
	Updated    string         `json:"updated"`
	Links      []versionLink  `json:"links"`
	MediaTypes []versionMedia `json:"media-types"`
}

type versionLink struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
}

type versionMedia struct {
	Base string `json:"base"`
	Type string `json:"type"`
}

func (h *Handler) version(r *http.Request) versionJSON {
	return versionJSON{ID: "v3.14", Status: "stable", Updated: "2020-04-07T00:00:00Z",
		Links:      []versionLink{{Rel: "self", Href: h.v3(r) + "/"}},
		MediaTypes: []versionMedia{{Base: "application/json", Type: "application/vnd.openstack.identity-v3+json"}}}
}

// handleGetVersions answers GET /identity: 300 Multiple Choices listing v3, as Keystone's
// root does; keystoneauth follows the self link.
func (h *Handler) handleGetVersions(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Location", h.v3(r)+"/")
	return writeJSON(w, r, http.StatusMultipleChoices,
		map[string]any{"versions": map[string]any{"values": []versionJSON{h.version(r)}}})
}

// handleGetVersion answers GET /identity/v3 with the v3 version document.
func (h *Handler) handleGetVersion(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, r, http.StatusOK, map[string]any{"version": h.version(r)})
}
