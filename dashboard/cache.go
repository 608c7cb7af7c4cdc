package dashboard

import (
	"net/http"
	"strings"

	"github.com/xloud/xloud-image/catalog"
)

// The admin's view of this node's image cache: the same catalog calls as Glance's
// /v2/cache, with the session's principal; the policy decides who may see and change it.

// cachePage lists the images this node caches and has queued. A node without a cache is
// the catalog's 404, shown as a page that says so (to those the policy lets ask).
func (d *Dashboard) cachePage(w http.ResponseWriter, r *http.Request, s *session) error {
	st, err := d.opt.Catalog.CacheList(r.Context(), s.pr)
	kind, _ := catalog.KindOf(err)
	if err != nil && kind != catalog.NotFound {
		return err
	}
	d.render(w, r, http.StatusOK, "cache", s, map[string]any{"Enabled": err == nil, "State": st})
	return nil
}

// queueCache queues an image (form field image) for fetching into this node's cache.
func (d *Dashboard) queueCache(w http.ResponseWriter, r *http.Request, s *session) error {
	id := strings.TrimSpace(r.PostFormValue("image"))
	if id == "" {
		return badInput("Name the image id to cache.")
	}
	if err := d.opt.Catalog.CacheQueue(r.Context(), s.pr, id); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/cache", http.StatusSeeOther)
	return nil
}

// uncache removes an image from this node's cache and queue.
func (d *Dashboard) uncache(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := d.opt.Catalog.CacheDelete(r.Context(), s.pr, r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/cache", http.StatusSeeOther)
	return nil
}
