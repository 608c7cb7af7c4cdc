package imageapi

import (
	"net/http"
	"time"

	"github.com/xloud/xloud-image/auth"
)

// The image cache API of this node (§5.2; glance/api/v2/cached_images.py): admins only, each
// node answering for its own cache. The decisions are the catalog's.

// cachedImageWire is one item of cached_images; times are Unix seconds as floats, as
// Glance's cache drivers keep them.
type cachedImageWire struct {
	ImageID      string  `json:"image_id"`
	Hits         int64   `json:"hits"`
	LastAccessed float64 `json:"last_accessed"`
	LastModified float64 `json:"last_modified"`
	Size         int64   `json:"size"`
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// listCache is GET /v2/cache: 200 {"cached_images": […], "queued_images": [ids]}.
func (a *API) listCache(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	st, err := a.cat.CacheList(r.Context(), pr)
	if err != nil {
		return err
	}
	cached := make([]cachedImageWire, 0, len(st.Cached))
	for _, c := range st.Cached {
		cached = append(cached, cachedImageWire{ImageID: c.ImageID, Hits: c.Hits,
			LastAccessed: unixSeconds(c.LastAccessed), LastModified: unixSeconds(c.LastModified), Size: c.Size})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"cached_images": cached, "queued_images": st.Queued})
}

// queueCache is PUT /v2/cache/{id}: 202, the image is fetched into this node's cache.
func (a *API) queueCache(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.cat.CacheQueue(r.Context(), pr, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// deleteCache is DELETE /v2/cache/{id}: 204, the image is neither cached nor queued here.
func (a *API) deleteCache(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.cat.CacheDelete(r.Context(), pr, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// clearCache is DELETE /v2/cache: 204; x-image-cache-clear-target says cache, queue or
// (absent or empty) both.
func (a *API) clearCache(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.cat.CacheClear(r.Context(), pr, r.Header.Get("X-Image-Cache-Clear-Target")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
