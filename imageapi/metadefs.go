package imageapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/metadefs"
)

// The metadata definitions API (Image API 2.2+, §2.1 of glance-next.md). Handlers read the
// request, call the metadefs store (which asks auth's policy) and write Glance's JSON.

// Glance's list limits (limit_param_default, api_limit_max).
const (
	metadefLimitDefault = 25
	metadefLimitMax     = 1000
)

func (a *API) metadefRoutes() {
	a.public("GET /v2/schemas/metadefs/{name}", a.getMetadefSchema)
	const ns = "/v2/metadefs/namespaces/{ns}"
	a.authed("GET /v2/metadefs/namespaces", a.listNamespaces)
	a.authed("POST /v2/metadefs/namespaces", a.createNamespace)
	a.authed("GET "+ns, a.showNamespace)
	a.authed("PUT "+ns, a.updateNamespace)
	a.authed("DELETE "+ns, a.deleteNamespace)
	a.authed("GET "+ns+"/objects", a.listMetadefObjects)
	a.authed("POST "+ns+"/objects", a.createMetadefObject)
	a.authed("DELETE "+ns+"/objects", a.deleteAll(metadefs.AllObjects))
	a.authed("GET "+ns+"/objects/{name}", a.showMetadefObject)
	a.authed("PUT "+ns+"/objects/{name}", a.updateMetadefObject)
	a.authed("DELETE "+ns+"/objects/{name}", a.deleteMetadefObject)
	a.authed("GET "+ns+"/properties", a.listMetadefProperties)
	a.authed("POST "+ns+"/properties", a.createMetadefProperty)
	a.authed("DELETE "+ns+"/properties", a.deleteAll(metadefs.AllProperties))
	a.authed("GET "+ns+"/properties/{name}", a.showMetadefProperty)
	a.authed("PUT "+ns+"/properties/{name}", a.updateMetadefProperty)
	a.authed("DELETE "+ns+"/properties/{name}", a.deleteMetadefProperty)
	a.authed("GET "+ns+"/tags", a.listMetadefTags)
	a.authed("POST "+ns+"/tags", a.createMetadefTags)
	a.authed("DELETE "+ns+"/tags", a.deleteAll(metadefs.AllTags))
	a.authed("GET "+ns+"/tags/{name}", a.showMetadefTag)
	a.authed("POST "+ns+"/tags/{name}", a.createMetadefTag)
	a.authed("PUT "+ns+"/tags/{name}", a.updateMetadefTag)
	a.authed("DELETE "+ns+"/tags/{name}", a.deleteMetadefTag)
	a.authed("GET /v2/metadefs/resource_types", a.listResourceTypes)
	a.authed("GET "+ns+"/resource_types", a.listAssociations)
	a.authed("POST "+ns+"/resource_types", a.associate)
	a.authed("DELETE "+ns+"/resource_types/{name}", a.dissociate)
}

// The wire forms add the links Glance adds.
type namespaceJSON struct {
	metadefs.Namespace
	Schema string `json:"schema"`
	Self   string `json:"self"`
}

func nsPath(name string) string { return "/v2/metadefs/namespaces/" + name }

func toNamespaceJSON(ns metadefs.Namespace) namespaceJSON {
	return namespaceJSON{Namespace: ns, Schema: "/v2/schemas/metadefs/namespace", Self: nsPath(ns.Namespace)}
}

type objectJSON struct {
	metadefs.Object
	Schema string `json:"schema"`
	Self   string `json:"self"`
}

func toObjectJSON(ns string, o metadefs.Object) objectJSON {
	return objectJSON{Object: o, Schema: "/v2/schemas/metadefs/object", Self: nsPath(ns) + "/objects/" + o.Name}
}

// md is the definitions store (routed only when Options.Metadefs is set).
func (a *API) md() *metadefs.Store { return a.opt.Metadefs }

// decodeBody reads a JSON request body and decodes it with decode.
func decodeBody[T any](w http.ResponseWriter, r *http.Request, decode func([]byte) (T, error)) (T, error) {
	b, err := readJSON(w, r)
	if err != nil {
		var zero T
		return zero, err
	}
	return decode(b)
}

// listLimit reads limit: an integer from 0 (Glance refuses negatives), capped at the
// maximum; def when absent.
func listLimit(q url.Values, def int) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, "limit param must be an integer")
	}
	if n < 0 {
		return 0, errorf(http.StatusBadRequest, "limit param must be positive")
	}
	return min(n, metadefLimitMax), nil
}

func listSortDir(q url.Values) (string, error) {
	d := q.Get("sort_dir")
	if d == "" {
		return "desc", nil
	}
	if d != "asc" && d != "desc" {
		return "", errorf(http.StatusBadRequest, "Invalid sort direction: %s", d)
	}
	return d, nil
}

// listNamespaces is GET /v2/metadefs/namespaces: the namespaces the caller may see, with
// their resource type associations; filters visibility and resource_types (comma
// separated), paging by limit and marker, first and next links.
func (a *API) listNamespaces(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	q := r.URL.Query()
	limit, err := listLimit(q, metadefLimitDefault)
	if err != nil {
		return err
	}
	dir, err := listSortDir(q)
	if err != nil {
		return err
	}
	opt := metadefs.ListOptions{Limit: limit, Marker: q.Get("marker"), SortKey: q.Get("sort_key"), SortDir: dir,
		Visibility: q.Get("visibility")}
	if opt.Visibility != "" && opt.Visibility != metadefs.Public && opt.Visibility != metadefs.Private {
		return errorf(http.StatusBadRequest, "Invalid visibility value: %s", opt.Visibility)
	}
	for _, rt := range strings.Split(q.Get("resource_types"), ",") {
		if rt = strings.TrimSpace(rt); rt != "" {
			opt.ResourceTypes = append(opt.ResourceTypes, rt)
		}
	}
	page, more, err := a.md().ListNamespaces(r.Context(), pr, opt)
	if err != nil {
		return err
	}
	items := make([]namespaceJSON, len(page))
	for i, ns := range page {
		items[i] = toNamespaceJSON(ns)
	}
	params := r.URL.Query()
	params.Del("marker")
	first := "/v2/metadefs/namespaces"
	if len(params) > 0 {
		first += "?" + params.Encode()
	}
	body := obj{"namespaces": items, "first": first, "schema": "/v2/schemas/metadefs/namespaces"}
	if more && len(page) > 0 {
		params.Set("marker", page[len(page)-1].Namespace)
		body["next"] = "/v2/metadefs/namespaces?" + params.Encode()
	}
	return writeJSON(w, http.StatusOK, body)
}

// createNamespace is POST /v2/metadefs/namespaces (admin): 201 with Location; the body may
// carry properties, objects, tags and resource type associations. A taken name is 409.
func (a *API) createNamespace(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	in, err := decodeBody(w, r, metadefs.DecodeNamespace)
	if err != nil {
		return err
	}
	ns, err := a.md().CreateNamespace(r.Context(), pr, in)
	if err != nil {
		return err
	}
	// webob makes Glance's relative Location absolute.
	w.Header().Set("Location", a.baseURL(r)+nsPath(ns.Namespace))
	return writeJSON(w, http.StatusCreated, toNamespaceJSON(ns))
}

// showNamespace is GET /v2/metadefs/namespaces/{ns}: the namespace with its contents; with
// ?resource_type= property names carry that association's prefix.
func (a *API) showNamespace(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	body, err := a.md().ShowNamespace(r.Context(), pr, r.PathValue("ns"), r.URL.Query().Get("resource_type"),
		func(ns metadefs.Namespace) ([]byte, error) { return json.Marshal(toNamespaceJSON(ns)) })
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body) // a client gone away has nothing left to be told
	return nil
}

// updateNamespace is PUT /v2/metadefs/namespaces/{ns} (admin): replaces the namespace's
// own fields (omitted ones reset); may rename it (409 when taken).
func (a *API) updateNamespace(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	in, err := decodeBody(w, r, metadefs.DecodeNamespace)
	if err != nil {
		return err
	}
	ns, err := a.md().UpdateNamespace(r.Context(), pr, r.PathValue("ns"), in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toNamespaceJSON(ns))
}

// deleteNamespace is DELETE /v2/metadefs/namespaces/{ns} (admin): 204; protected is 403.
func (a *API) deleteNamespace(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.md().DeleteNamespace(r.Context(), pr, r.PathValue("ns")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteAll is DELETE …/objects, …/properties, …/tags (admin): 204; protected is 403.
func (a *API) deleteAll(what string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
		if err := a.md().DeleteAll(r.Context(), pr, r.PathValue("ns"), what); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// listMetadefObjects is GET …/objects.
func (a *API) listMetadefObjects(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	ns := r.PathValue("ns")
	objs, err := a.md().Objects(r.Context(), pr, ns)
	if err != nil {
		return err
	}
	items := make([]objectJSON, len(objs))
	for i, o := range objs {
		items[i] = toObjectJSON(ns, o)
	}
	return writeJSON(w, http.StatusOK, obj{"objects": items, "schema": "v2/schemas/metadefs/objects"})
}

// createMetadefObject is POST …/objects (admin): 201; a taken name is 409.
func (a *API) createMetadefObject(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	in, err := decodeBody(w, r, metadefs.DecodeObject)
	if err != nil {
		return err
	}
	ns := r.PathValue("ns")
	o, err := a.md().CreateObject(r.Context(), pr, ns, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, toObjectJSON(ns, o))
}

// showMetadefObject is GET …/objects/{name}.
func (a *API) showMetadefObject(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	ns := r.PathValue("ns")
	o, err := a.md().Object(r.Context(), pr, ns, r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toObjectJSON(ns, o))
}

// updateMetadefObject is PUT …/objects/{name} (admin): replaces the object, may rename it.
func (a *API) updateMetadefObject(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	in, err := decodeBody(w, r, metadefs.DecodeObject)
	if err != nil {
		return err
	}
	ns := r.PathValue("ns")
	o, err := a.md().UpdateObject(r.Context(), pr, ns, r.PathValue("name"), in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toObjectJSON(ns, o))
}

// deleteMetadefObject is DELETE …/objects/{name} (admin): 204; protected is 403.
func (a *API) deleteMetadefObject(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.md().DeleteObject(r.Context(), pr, r.PathValue("ns"), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listMetadefProperties is GET …/properties: a dictionary by name.
func (a *API) listMetadefProperties(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	props, err := a.md().Properties(r.Context(), pr, r.PathValue("ns"))
	if err != nil {
		return err
	}
	if props == nil {
		props = map[string]metadefs.Property{}
	}
	return writeJSON(w, http.StatusOK, obj{"properties": props})
}

// createMetadefProperty is POST …/properties (admin): 201; a taken name is 409.
func (a *API) createMetadefProperty(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	b, err := readJSON(w, r)
	if err != nil {
		return err
	}
	name, p, err := metadefs.DecodeProperty(b)
	if err != nil {
		return err
	}
	p, err = a.md().CreateProperty(r.Context(), pr, r.PathValue("ns"), name, p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, p)
}

// showMetadefProperty is GET …/properties/{name}; with ?resource_type= the name is the
// prefixed one.
func (a *API) showMetadefProperty(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	p, err := a.md().Property(r.Context(), pr, r.PathValue("ns"), r.PathValue("name"), r.URL.Query().Get("resource_type"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// updateMetadefProperty is PUT …/properties/{name} (admin): replaces it; the body's name
// renames it (409 when taken).
func (a *API) updateMetadefProperty(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	b, err := readJSON(w, r)
	if err != nil {
		return err
	}
	name, p, err := metadefs.DecodeProperty(b)
	if err != nil {
		return err
	}
	p, err = a.md().UpdateProperty(r.Context(), pr, r.PathValue("ns"), r.PathValue("name"), name, p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// deleteMetadefProperty is DELETE …/properties/{name} (admin): 204; protected is 403.
func (a *API) deleteMetadefProperty(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.md().DeleteProperty(r.Context(), pr, r.PathValue("ns"), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listMetadefTags is GET …/tags: limit, marker, sort_key (created_at, name), sort_dir.
func (a *API) listMetadefTags(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	q := r.URL.Query()
	limit, err := listLimit(q, 0)
	if err != nil {
		return err
	}
	dir, err := listSortDir(q)
	if err != nil {
		return err
	}
	tags, err := a.md().Tags(r.Context(), pr, r.PathValue("ns"), metadefs.TagOptions{Limit: limit, Marker: q.Get("marker"),
		SortKey: q.Get("sort_key"), SortDir: dir})
	if err != nil {
		return err
	}
	if tags == nil {
		tags = []metadefs.Tag{}
	}
	return writeJSON(w, http.StatusOK, obj{"tags": tags})
}

// createMetadefTags is POST …/tags (admin) with {"tags": [{"name"}…]}: replaces the
// namespace's tags, or adds to them with X-Openstack-Append: true; 201 with the tags made.
func (a *API) createMetadefTags(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	names, err := decodeBody(w, r, metadefs.DecodeTags)
	if err != nil {
		return err
	}
	// Glance reads the header with oslo's bool_from_string.
	appending := slices.Contains([]string{"1", "t", "true", "on", "y", "yes"}, strings.ToLower(strings.TrimSpace(r.Header.Get("X-Openstack-Append"))))
	tags, err := a.md().CreateTags(r.Context(), pr, r.PathValue("ns"), names, appending)
	if err != nil {
		return err
	}
	if tags == nil {
		tags = []metadefs.Tag{}
	}
	return writeJSON(w, http.StatusCreated, obj{"tags": tags})
}

// createMetadefTag is POST …/tags/{name} (admin, no body): 201; a taken name is 409.
func (a *API) createMetadefTag(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	io.Copy(io.Discard, io.LimitReader(r.Body, maxJSONBody)) // no body is expected; any is ignored, as Glance does
	name := r.PathValue("name")
	if _, err := metadefs.DecodeTag([]byte(`{"name":` + strconv.Quote(name) + `}`)); err != nil {
		return err
	}
	t, err := a.md().CreateTag(r.Context(), pr, r.PathValue("ns"), name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, t)
}

// showMetadefTag is GET …/tags/{name}.
func (a *API) showMetadefTag(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	t, err := a.md().Tag(r.Context(), pr, r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t)
}

// updateMetadefTag is PUT …/tags/{name} (admin) with {"name": new}: renames (409 when taken).
func (a *API) updateMetadefTag(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	name, err := decodeBody(w, r, metadefs.DecodeTag)
	if err != nil {
		return err
	}
	t, err := a.md().RenameTag(r.Context(), pr, r.PathValue("ns"), r.PathValue("name"), name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t)
}

// deleteMetadefTag is DELETE …/tags/{name} (admin): 204; protected is 403.
func (a *API) deleteMetadefTag(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.md().DeleteTag(r.Context(), pr, r.PathValue("ns"), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listResourceTypes is GET /v2/metadefs/resource_types.
func (a *API) listResourceTypes(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	rts, err := a.md().ResourceTypes(r.Context(), pr)
	if err != nil {
		return err
	}
	if rts == nil {
		rts = []metadefs.ResourceType{}
	}
	return writeJSON(w, http.StatusOK, obj{"resource_types": rts})
}

// listAssociations is GET …/resource_types: the namespace's associations.
func (a *API) listAssociations(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	as, err := a.md().Associations(r.Context(), pr, r.PathValue("ns"))
	if err != nil {
		return err
	}
	if as == nil {
		as = []metadefs.Association{}
	}
	return writeJSON(w, http.StatusOK, obj{"resource_type_associations": as})
}

// associate is POST …/resource_types (admin): 201; an unknown resource type is created, an
// existing association is 409.
func (a *API) associate(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	in, err := decodeBody(w, r, metadefs.DecodeAssociation)
	if err != nil {
		return err
	}
	as, err := a.md().Associate(r.Context(), pr, r.PathValue("ns"), in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, as)
}

// dissociate is DELETE …/resource_types/{name} (admin): 204; protected is 403.
func (a *API) dissociate(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	if err := a.md().Dissociate(r.Context(), pr, r.PathValue("ns"), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
