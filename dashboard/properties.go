package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/metadefs"
)

// imageResourceType is the metadata definitions' resource type of images.
const imageResourceType = "OS::Glance::Image"

// propDef is one property the editor offers: a metadata definition, typed.
type propDef struct {
	Key, Title, Namespace, Type, Description, Pattern string
	Enum                                              []string
	Min, Max                                          string // empty: no limit
	MaxLength                                         int64
}

// propertyDefs gathers the image properties of the namespaces the caller may see that
// apply to images, with their prefixes, sorted by key.
func (d *Dashboard) propertyDefs(r *http.Request, s *session) ([]propDef, error) {
	ctx := r.Context()
	nss, _, err := d.opt.Metadefs.ListNamespaces(ctx, s.pr, metadefs.ListOptions{Limit: 1000, ResourceTypes: []string{imageResourceType}})
	if err != nil {
		return nil, err
	}
	var out []propDef
	for _, ns := range nss {
		full, err := d.opt.Metadefs.GetNamespace(ctx, s.pr, ns.Namespace, imageResourceType)
		if err != nil {
			continue // gone since listed, or no longer visible
		}
		add := func(key string, p metadefs.Property) {
			out = append(out, defOf(full.Namespace, key, p))
		}
		for k, p := range full.Properties {
			add(k, p)
		}
		for _, o := range full.Objects {
			for k, p := range o.Properties {
				add(k, p)
			}
		}
	}
	slices.SortFunc(out, func(a, b propDef) int { return strings.Compare(a.Key, b.Key) })
	return slices.CompactFunc(out, func(a, b propDef) bool { return a.Key == b.Key }), nil
}

func defOf(ns, key string, p metadefs.Property) propDef {
	def := propDef{Key: key, Title: p.Title, Namespace: ns, Type: "string"}
	if p.Type != nil {
		def.Type = *p.Type
	}
	if p.Description != nil {
		def.Description = *p.Description
	}
	if p.Pattern != nil {
		def.Pattern = *p.Pattern
	}
	enum := p.Enum
	if def.Type == "array" && p.Items != nil {
		enum = p.Items.Enum
	}
	for _, e := range enum {
		def.Enum = append(def.Enum, fmt.Sprint(e))
	}
	if p.Minimum != nil {
		def.Min = fmt.Sprint(*p.Minimum)
	}
	if p.Maximum != nil {
		def.Max = fmt.Sprint(*p.Maximum)
	}
	if p.MaxLength != nil {
		def.MaxLength = *p.MaxLength
	}
	return def
}

// propertyInput is the typed input of one property: the fragment htmx swaps in when a key
// is chosen, or (without script) the image page with that input.
func (d *Dashboard) propertyInput(w http.ResponseWriter, r *http.Request, s *session) error {
	data, err := d.imagePage(r, s)
	if err != nil {
		return err
	}
	key := r.URL.Query().Get("key")
	defs, _ := data["PropertyDefs"].([]propDef)
	i := slices.IndexFunc(defs, func(p propDef) bool { return p.Key == key })
	if i < 0 {
		return badInput(fmt.Sprintf("No metadata definition names the property %q.", key))
	}
	data["Chosen"] = defs[i]
	data["ChosenValue"] = data["Image"].(catalog.Image).Properties[key]
	if r.Header.Get("HX-Request") != "" {
		return d.renderPart(w, http.StatusOK, "image", "propinput", map[string]any{"Chosen": defs[i],
			"ChosenValue": data["ChosenValue"], "CSRF": s.CSRF, "Image": data["Image"]})
	}
	d.render(w, r, http.StatusOK, "image", s, data)
	return nil
}

// setProperty sets one property: a defined one is checked against its definition (type,
// enum, limits) first; a custom key is taken as it is.
func (d *Dashboard) setProperty(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx, id := r.Context(), r.PathValue("id")
	key, value := strings.TrimSpace(r.PostFormValue("key")), r.PostFormValue("value")
	if key == "" {
		key = strings.TrimSpace(r.PostFormValue("custom_key"))
	}
	if key == "" {
		return badInput("Name the property.")
	}
	if vs := r.PostForm["value"]; len(vs) > 1 { // an array's choices
		b, _ := json.Marshal(vs)
		value = string(b)
	}
	img, err := d.opt.Catalog.Get(ctx, s.pr, id)
	if err != nil {
		return err
	}
	if d.opt.Metadefs != nil {
		if err := d.opt.Metadefs.CheckImageProperties(ctx, img.Owner, map[string]string{key: value}, []string{key}); err != nil {
			return err
		}
	}
	v, _ := json.Marshal(value)
	if _, err := d.opt.Catalog.Update(ctx, s.pr, id, []catalog.Change{{Op: "add", Path: key, Value: v}}); err != nil {
		return err
	}
	return d.back(w, r)
}

func (d *Dashboard) removeProperty(w http.ResponseWriter, r *http.Request, s *session) error {
	key := r.PostFormValue("key")
	if key == "" {
		return badInput("Name the property.")
	}
	if _, err := d.opt.Catalog.Update(r.Context(), s.pr, r.PathValue("id"), []catalog.Change{{Op: "remove", Path: key}}); err != nil {
		return err
	}
	return d.back(w, r)
}
