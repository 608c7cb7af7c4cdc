package imageapi

import (
	"net/http"
	"slices"

	"github.com/xloud/xloud-image/auth"
)

// versions are the v2 minor versions listed, newest (CURRENT) first: every version whose
// features are served (§1.1): Glance's list without the image cache and multi-store, plus
// 2.12 (an image's tasks) and 2.13 (/v2/info/usage), which Glance ties to multi-store but are
// served here; the 2.17 location API and 2.18's cache clean/prune are not. A node with an
// image cache (--cache-dir) lists cacheVersions as well, as Glance does with
// image_cache_dir: 2.14 brought /v2/cache and 2.16 (CURRENT) its 202 on queueing.
var (
	versions      = []string{"v2.15", "v2.13", "v2.12", "v2.9", "v2.7", "v2.6", "v2.5", "v2.4", "v2.3", "v2.2", "v2.1", "v2.0"}
	cacheVersions = []string{"v2.16", "v2.15", "v2.14", "v2.13", "v2.12", "v2.9", "v2.7", "v2.6", "v2.5", "v2.4", "v2.3", "v2.2", "v2.1", "v2.0"}
)

// versionList lists the versions this node serves, newest first: versions, or cacheVersions
// on a node with an image cache, with those Glance lists only with enabled_backends in place
// when the stores API is on (--store): 2.8 (X-Image-Meta-Store, /info/stores), 2.10 (DELETE
// /v2/stores/…), 2.11 (the import's stores).
func (a *API) versionList() []string {
	base := versions
	if a.cat.CacheEnabled() {
		base = cacheVersions
	}
	if !a.cat.MultiStore {
		return base
	}
	out := append([]string(nil), base...)
	i := slices.Index(out, "v2.9")
	out = slices.Insert(out, i+1, "v2.8")
	return slices.Insert(out, i, "v2.11", "v2.10")
}

// supportedVersion reports whether a path's version segment is served (as /v2).
func (a *API) supportedVersion(seg string) bool {
	return seg == "v2" || slices.Contains(a.versionList(), seg)
}

func (a *API) versionDocs(r *http.Request) []map[string]any {
	href := a.baseURL(r) + "/v2/"
	versions := a.versionList()
	out := make([]map[string]any, 0, len(versions))
	for i, v := range versions {
		status := "SUPPORTED"
		if i == 0 {
			status = "CURRENT"
		}
		out = append(out, map[string]any{"id": v, "status": status,
			"links": []map[string]string{{"rel": "self", "href": href}}})
	}
	return out
}

// getVersionsRoot is GET / (and any unknown version prefix): 300 with the versions.
func (a *API) getVersionsRoot(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	return writeJSON(w, http.StatusMultipleChoices, map[string]any{"versions": a.versionDocs(r)})
}

// getVersions is GET /versions: 200 with the versions (glanceclient calls it first).
func (a *API) getVersions(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	return writeJSON(w, http.StatusOK, map[string]any{"versions": a.versionDocs(r)})
}

// getVersion is GET /v2: the current version alone, so that clients given a …/v2 endpoint
// also discover it (real Glance does not answer here).
func (a *API) getVersion(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	return writeJSON(w, http.StatusOK, map[string]any{"version": a.versionDocs(r)[0]})
}
