package imageapi

import (
	"net/http"

	"github.com/xloud/xloud-image/auth"
)

// addTag is PUT /v2/images/{id}/tags/{tag}: 204, also when the image has the tag already; a
// tag over 255 characters is 400, the 129th tag 413.
func (a *API) addTag(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.cat.AddTag(r.Context(), pr, r.PathValue("id"), r.PathValue("tag")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteTag is DELETE /v2/images/{id}/tags/{tag}: 204; a tag the image lacks is 404.
func (a *API) deleteTag(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.cat.DeleteTag(r.Context(), pr, r.PathValue("id"), r.PathValue("tag")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
