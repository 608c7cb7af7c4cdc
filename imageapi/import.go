package imageapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/reqlog"
)

// stageImageData is PUT /v2/images/{id}/stage (§1.7): data for a later glance-direct
// import, taken as an upload is; 204.
func (a *API) stageImageData(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	size, err := uploadSize(r)
	if err != nil {
		return err
	}
	store := r.Header.Get("X-Image-Meta-Store")
	if _, err := a.cat.StageTo(r.Context(), pr, r.PathValue("id"), store, r.Body, size); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// importRequest is the body of POST /v2/images/{id}/import (§1.8).
type importRequest struct {
	Method *struct {
		Name string `json:"name"`
		URI  string `json:"uri"`
		// glance-download
		GlanceImageID   string `json:"glance_image_id"`
		GlanceRegion    string `json:"glance_region"`
		GlanceInterface string `json:"glance_service_interface"`
	} `json:"method"`
	Stores               []string `json:"stores"`
	AllStores            *bool    `json:"all_stores"`              // a non-boolean is refused by Unmarshal
	AllStoresMustSucceed *bool    `json:"all_stores_must_succeed"` // likewise
}

// importImage is POST /v2/images/{id}/import (§1.8): glance-direct or web-download. The
// image is importing when the answer (202, no body) goes out; the work runs in the
// background and leaves it active, or queued if it fails.
func (a *API) importImage(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	b, err := readJSON(w, r)
	if err != nil {
		return err
	}
	var req importRequest
	if err := json.Unmarshal(b, &req); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return errorf(http.StatusBadRequest, "'%s' must be a %s.", typeErr.Field, typeErr.Type)
		}
		return errorf(http.StatusBadRequest, "The import request is not valid JSON: %v", err)
	}
	if req.Method == nil || req.Method.Name == "" {
		return errorf(http.StatusBadRequest, "The import request needs a method: {\"method\": {\"name\": \"glance-direct\"}}.")
	}
	// With one store, Glance imports to it whatever "all_stores" says (tempest sends
	// all_stores: true to every server). Naming stores, or letting some fail, is a choice
	// that exists only with several: refused rather than silently ignored as Glance does.
	if !a.cat.MultiStore && len(req.Stores) > 0 {
		return errorf(http.StatusBadRequest, "Multiple stores are not enabled at this site: 'stores' cannot be used.")
	}
	if !a.cat.MultiStore && req.AllStoresMustSucceed != nil && !*req.AllStoresMustSucceed {
		return errorf(http.StatusBadRequest, "'all_stores_must_succeed' can only be false when several stores are enabled.")
	}
	id := r.PathValue("id")
	ir := catalog.ImportRequest{Method: req.Method.Name, URI: req.Method.URI, Web: a.opt.Web, RequestID: reqlog.ID(r.Context())}
	if a.cat.MultiStore {
		ir.Stores, ir.AllStoresMustSucceed = req.Stores, req.AllStoresMustSucceed
		ir.AllStores = req.AllStores != nil && *req.AllStores
		ir.HeaderStore = r.Header.Get("X-Image-Meta-Store")
	}
	if req.Method.Name == catalog.ImportGlanceDownload {
		identity := a.baseURL(r) + "/identity/v3" // this server's own identity
		if a.opt.IdentityURL != nil {
			identity = a.opt.IdentityURL(r)
		}
		ir.Glance = &catalog.GlanceSource{ImageID: req.Method.GlanceImageID, Region: req.Method.GlanceRegion,
			Interface: req.Method.GlanceInterface, IdentityURL: identity, Token: r.Header.Get("X-Auth-Token")}
	}
	run, err := a.cat.Import(r.Context(), pr, id, ir)
	if err != nil {
		return err
	}
	reqID := reqlog.ID(r.Context())
	a.opt.Log.Info("image import started", "image", id, "method", req.Method.Name, "user", pr.UserName, "request_id", reqID)
	go func() {
		if err := run(context.WithoutCancel(r.Context())); err != nil {
			a.opt.Log.Warn("image import failed; the image is queued again", "image", id, "method", req.Method.Name,
				"request_id", reqID, "err", err)
			return
		}
		a.opt.Log.Info("image import finished", "image", id, "method", req.Method.Name, "request_id", reqID)
	}()
	w.WriteHeader(http.StatusAccepted)
	return nil
}
