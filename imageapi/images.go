package imageapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
)

// createImage is POST /v2/images (§1.4): 201 with the image, its Location and the import
// methods.
func (a *API) createImage(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	body, err := decodeObject(w, r)
	if err != nil {
		return err
	}
	in, err := parseNewImage(body)
	if err != nil {
		return err
	}
	img, err := a.cat.Create(r.Context(), pr, in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", a.baseURL(r)+"/v2/images/"+img.ID)
	w.Header().Set("OpenStack-image-import-methods", strings.Join(a.cat.ImportMethods(), ","))
	if stores := a.cat.Stores(); stores != nil {
		ids := make([]string, len(stores))
		for i, s := range stores {
			ids[i] = s.ID
		}
		w.Header().Set("OpenStack-image-store-ids", strings.Join(ids, ","))
	}
	return writeJSON(w, http.StatusCreated, a.imageView(r, img))
}

// parseNewImage reads a create body: base fields typed as the schema says, read-only and
// reserved fields refused (403), anything else an extra property that must be a string
// with a name of at most 255 characters (400).
func parseNewImage(body map[string]json.RawMessage) (catalog.NewImage, error) {
	in := catalog.NewImage{Properties: map[string]string{}}
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		raw := body[k]
		if err := refuseField(k, true); err != nil {
			return in, err
		}
		if !isBaseField(k) {
			if err := checkProperty(k, raw); err != nil {
				return in, err
			}
			var s string
			json.Unmarshal(raw, &s)
			in.Properties[k] = s
			continue
		}
		if err := checkBaseValue(k, raw); err != nil {
			return in, err
		}
		var owner *string
		dst := map[string]any{
			"id": &in.ID, "name": &in.Name, "visibility": &in.Visibility, "protected": &in.Protected,
			"os_hidden": &in.Hidden, "container_format": &in.ContainerFormat, "disk_format": &in.DiskFormat,
			"min_disk": &in.MinDisk, "min_ram": &in.MinRAM, "owner": &owner, "tags": &in.Tags,
		}[k]
		if err := json.Unmarshal(raw, dst); err != nil {
			return in, errorf(http.StatusBadRequest, "Invalid value for %s.", k)
		}
		if owner != nil {
			in.Owner = *owner
		}
	}
	return in, nil
}

// showImage is GET /v2/images/{id}.
func (a *API) showImage(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	img, err := a.cat.Get(r.Context(), pr, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a.imageView(r, img))
}

// updateImage is PATCH /v2/images/{id} (§1.5): JSON-patch in either of Glance's media types.
func (a *API) updateImage(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	changes, draft, err := parsePatch(w, r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if draft {
		// The 2.0 draft's add does not overwrite an existing property.
		img, err := a.cat.Get(r.Context(), pr, id)
		if err != nil {
			return err
		}
		for _, ch := range changes {
			if _, exists := img.Properties[ch.Path]; exists && ch.Op == "add" {
				return errorf(http.StatusConflict, "Property %s already present.", ch.Path)
			}
		}
	}
	img, err := a.cat.Update(r.Context(), pr, id, changes)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a.imageView(r, img))
}

// deleteImage is DELETE /v2/images/{id}: 204.
func (a *API) deleteImage(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.cat.Delete(r.Context(), pr, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deactivateImage is POST /v2/images/{id}/actions/deactivate: 204.
func (a *API) deactivateImage(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.cat.Deactivate(r.Context(), pr, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// reactivateImage is POST /v2/images/{id}/actions/reactivate: 204.
func (a *API) reactivateImage(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.cat.Reactivate(r.Context(), pr, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listImages is GET /v2/images (§1.6): a page, `first`, and `next` when the page is full.
func (a *API) listImages(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return errorf(http.StatusBadRequest, "The query string does not parse: %v", err)
	}
	opt, err := parseListQuery(q)
	if err != nil {
		return err
	}
	imgs, full, err := a.cat.List(r.Context(), pr, opt)
	if err != nil {
		return err
	}
	list := make([]map[string]any, 0, len(imgs))
	for _, img := range imgs {
		list = append(list, a.imageView(r, img))
	}
	q.Del("marker")
	body := map[string]any{"images": list, "schema": "/v2/schemas/images", "first": "/v2/images"}
	if len(q) > 0 {
		body["first"] = "/v2/images?" + q.Encode()
	}
	if full && len(imgs) > 0 {
		q.Set("marker", imgs[len(imgs)-1].ID)
		body["next"] = "/v2/images?" + q.Encode()
	}
	return writeJSON(w, http.StatusOK, body)
}
