package dashboard

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/xloud/xloud-image/catalog"
)

// tabs are the image list's views: each is a catalog filter, as Glance's list filters.
var tabs = []struct{ Key, Title string }{
	{"project", "My project"}, {"shared", "Shared with me"}, {"community", "Community"},
	{"public", "Public"}, {"all", "All projects"},
}

// listQuery is the images page's query, parsed: the tab, filters, sort and page.
type listQuery struct {
	Tab, Name, Status, Visibility, Protected, DiskFormat, Tag, SizeMin, SizeMax, Sort, Dir, Marker string
}

func parseListQuery(q url.Values, s *session) (listQuery, catalog.ListOptions, error) {
	lq := listQuery{Tab: q.Get("tab"), Name: q.Get("name"), Status: q.Get("status"), Visibility: q.Get("visibility"), Protected: q.Get("protected"),
		DiskFormat: q.Get("disk_format"), Tag: q.Get("tag"), SizeMin: q.Get("size_min"), SizeMax: q.Get("size_max"),
		Sort: q.Get("sort"), Dir: q.Get("dir"), Marker: q.Get("marker")}
	if lq.Tab == "" {
		lq.Tab = "project"
	}
	opt := catalog.ListOptions{Marker: lq.Marker, Limit: catalog.DefaultLimit}
	f := &opt.Filter
	switch lq.Tab {
	case "project":
		f.Visibility, f.Owner = "all", s.ProjectID
	case "shared":
		f.Visibility, f.MemberStatus = "shared", "all"
	case "community", "public", "all":
		f.Visibility = lq.Tab
	default:
		return lq, opt, badInput("Unknown tab " + strconv.Quote(lq.Tab) + ".")
	}
	// The tabs of one visibility fix it; my project's and all projects' narrow to one, as
	// the Image API's ?visibility= does (the catalog's listing rule still decides).
	switch {
	case lq.Visibility == "":
	case lq.Tab != "project" && lq.Tab != "all":
		return lq, opt, badInput("This tab lists one visibility already.")
	case slices.Contains(visibilities, lq.Visibility):
		f.Visibility = lq.Visibility
	default:
		return lq, opt, badInput("Unknown visibility " + strconv.Quote(lq.Visibility) + ".")
	}
	if lq.Name != "" {
		f.Names = []string{lq.Name}
	}
	if lq.Status != "" {
		f.Statuses = []string{lq.Status}
	}
	if lq.DiskFormat != "" {
		f.DiskFormats = []string{lq.DiskFormat}
	}
	if lq.Tag != "" {
		f.Tags = []string{lq.Tag}
	}
	switch lq.Protected {
	case "":
	case "true", "false":
		p := lq.Protected == "true"
		f.Protected = &p
	default:
		return lq, opt, badInput("protected is true or false.")
	}
	var err error
	if f.SizeMin, err = sizeParam("Minimum size", lq.SizeMin); err != nil {
		return lq, opt, err
	}
	if f.SizeMax, err = sizeParam("Maximum size", lq.SizeMax); err != nil {
		return lq, opt, err
	}
	if lq.Sort != "" {
		if !catalog.ValidSortKey(lq.Sort) {
			return lq, opt, badInput("Cannot sort by " + strconv.Quote(lq.Sort) + ".")
		}
		if lq.Dir != "" && lq.Dir != "asc" && lq.Dir != "desc" {
			return lq, opt, badInput("The sort direction is asc or desc.")
		}
		opt.Sort = []catalog.SortKey{{Key: lq.Sort, Asc: lq.Dir == "asc"}}
	}
	return lq, opt, nil
}

// sizeParam reads a size in bytes, with an optional K, M, G or T suffix (binary units).
func sizeParam(what, v string) (*int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	mult := int64(1)
	if i := strings.IndexAny(strings.ToUpper(v[len(v)-1:]), "KMGT"); i >= 0 {
		mult = int64(1) << (10 * (strings.Index("KMGT", strings.ToUpper(v[len(v)-1:])) + 1))
		v = v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return nil, badInput(what + " is a number of bytes, optionally followed by K, M, G or T.")
	}
	n *= mult
	return &n, nil
}

// row is one image of the list.
type row struct {
	catalog.Image
	Type, Signature string
}

func rowOf(img catalog.Image) row {
	typ := "image"
	if img.Properties["image_type"] == "snapshot" {
		typ = "snapshot"
	}
	sig := img.Properties[catalog.PropSignatureStatus]
	if sig == "" {
		sig = catalog.SigUnsigned
	}
	return row{Image: img, Type: typ, Signature: sig}
}

// listImages is the images page: one catalog.List call, the Image API's, with the same
// principal; htmx asks for the table alone when a filter changes.
func (d *Dashboard) listImages(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	lq, opt, err := parseListQuery(q, s)
	if err != nil {
		return err
	}
	imgs, full, err := d.opt.Catalog.List(r.Context(), s.pr, opt)
	if err != nil {
		return err
	}
	rows := make([]row, len(imgs))
	for i, img := range imgs {
		rows[i] = rowOf(img)
	}
	q.Del("marker")
	data := map[string]any{"Query": lq, "Rows": rows, "Tabs": tabs, "Statuses": statuses, "Visibilities": visibilities,
		"DiskFormats": catalog.DiskFormats, "First": Prefix + "/images?" + q.Encode()}
	if full && len(imgs) > 0 {
		q.Set("marker", imgs[len(imgs)-1].ID)
		data["Next"] = Prefix + "/images?" + q.Encode()
	}
	if r.Header.Get("HX-Request") != "" && r.Header.Get("HX-Target") == "images" {
		return d.renderPart(w, http.StatusOK, "images", "table", data)
	}
	if usage, err := d.opt.Catalog.Usage(r.Context(), s.ProjectID); err == nil {
		data["Usage"] = usageBars(usage)
	}
	d.render(w, r, http.StatusOK, "images", s, data)
	return nil
}

// statuses are the filterable image states.
// visibilities are Glance's four, the choices wherever the dashboard offers one.
var visibilities = []string{"private", "shared", "community", "public"}

var statuses = []string{"queued", "saving", "uploading", "importing", "active", "deactivated"}

// bar is one quota usage bar.
type bar struct {
	Resource     string
	Usage, Limit int64
	Percent      int
	Over         bool
}

// usageBars turns GET /v2/info/usage's answer into bars, in the catalog's order.
func usageBars(u map[string]catalog.UsageEntry) []bar {
	var out []bar
	for _, res := range catalog.LimitResources {
		e, ok := u[res]
		if !ok || e.Limit < 0 {
			continue
		}
		b := bar{Resource: res, Usage: e.Usage, Limit: e.Limit}
		if e.Limit > 0 {
			b.Percent = int(min(100, e.Usage*100/e.Limit))
		} else if e.Usage > 0 {
			b.Percent = 100
		}
		b.Over = e.Usage > e.Limit
		out = append(out, b)
	}
	return out
}
