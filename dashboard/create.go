package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/reqlog"
)

// newImage is the create form: upload a file, or import from a URL.
func (d *Dashboard) newImage(w http.ResponseWriter, r *http.Request, s *session) error {
	d.render(w, r, http.StatusOK, "new", s, map[string]any{"DiskFormats": catalog.DiskFormats,
		"ContainerFormats": catalog.ContainerFormats, "Visibilities": visibilities})
	return nil
}

// createImage creates a queued image from the form. For an upload (the page's script posts
// the form and sends the file itself) it answers JSON: the image id, where to PUT the file
// on the Image API, and the session's token to do it with — the bytes go straight to the
// Image API, which checks them. For a web-download it starts the import and shows the
// image.
func (d *Dashboard) createImage(w http.ResponseWriter, r *http.Request, s *session) error {
	in, err := newImageOf(r)
	if err != nil {
		return err
	}
	method := r.PostFormValue("method")
	uri := strings.TrimSpace(r.PostFormValue("url"))
	switch method {
	case "upload":
	case catalog.ImportWebDownload:
		if u, err := url.Parse(uri); uri == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return badInput("Give the http or https URL to import from.")
		}
	default:
		return badInput("Upload a file or import from a URL.")
	}
	protect := in.Protected
	if method != "upload" {
		in.Protected = false // set once the import has started: a refused one is undone by a delete
	}
	img, err := d.opt.Catalog.Create(r.Context(), s.pr, in)
	if err != nil {
		return err
	}
	if method == "upload" {
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(map[string]string{"id": img.ID, "upload": "/v2/images/" + img.ID + "/file",
			"token": s.Token, "page": Prefix + "/images/" + img.ID})
	}
	run, err := d.opt.Catalog.Import(r.Context(), s.pr, img.ID, catalog.ImportRequest{Method: method, URI: uri,
		Web: d.opt.Web, RequestID: reqlog.ID(r.Context())})
	if err != nil {
		// A refused import (a URL the import filter does not allow, …) leaves nothing behind.
		if derr := d.opt.Catalog.Delete(r.Context(), s.pr, img.ID); derr != nil {
			d.opt.Log.Warn("dashboard: delete the image of a refused import", "image", img.ID, "err", derr)
		}
		return err
	}
	if protect {
		v, _ := json.Marshal(true)
		if _, err := d.opt.Catalog.Update(r.Context(), s.pr, img.ID, []catalog.Change{{Op: "replace", Path: "protected", Value: v}}); err != nil {
			d.opt.Log.Warn("dashboard: protect an imported image", "image", img.ID, "err", err)
		}
	}
	go func() {
		if err := run(context.WithoutCancel(r.Context())); err != nil {
			d.opt.Log.Warn("image import failed; the image is queued again", "image", img.ID, "err", err)
		}
	}()
	http.Redirect(w, r, Prefix+"/images/"+img.ID, http.StatusSeeOther)
	return nil
}

// newImageOf reads the create form's fields.
func newImageOf(r *http.Request) (catalog.NewImage, error) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		return catalog.NewImage{}, badInput("Give the image a name.")
	}
	df, cf := r.PostFormValue("disk_format"), r.PostFormValue("container_format")
	if cf == "" {
		cf = "bare"
	}
	vis := r.PostFormValue("visibility")
	if vis == "" {
		vis = string(catalog.VisibilityPrivate)
	}
	return catalog.NewImage{Name: &name, DiskFormat: &df, ContainerFormat: &cf, Visibility: catalog.Visibility(vis),
		Protected: r.PostFormValue("protected") == "true", Tags: splitTags(r.PostFormValue("tags"))}, nil
}
