package imageapi_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/imageapi"
	"github.com/xloud/xloud-image/metadefs"
)

// newMetadefEnv is the test env with the metadata definitions served (the shipped ones
// loaded) and, with check, image properties checked against them.
func newMetadefEnv(t *testing.T, check bool) (*env, *metadefs.Store) {
	t.Helper()
	e := newEnv(t)
	md := metadefs.New(e.store.Meta(), &auth.Policy{Directory: e.ident})
	if _, err := md.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if check {
		e.cat.Properties = md
	}
	h := imageapi.New(e.cat, &auth.Authenticator{Passwords: e.ident, Tokens: e.ident},
		imageapi.Options{Web: &catalog.WebDownloader{}, RegistryPort: "5000", Metadefs: md})
	e.srv.Close()
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e, md
}

// step is one request and the status it must get.
type step struct {
	who, method, path string
	body              any
	status            int
	hdr               []string
}

func (e *env) run(t *testing.T, steps []step) {
	t.Helper()
	for _, s := range steps {
		r := e.do(s.who, s.method, s.path, s.body, s.hdr...)
		if r.status != s.status {
			t.Errorf("%s %s %s as %q: %d %s, want %d", s.method, s.path, bodyText(s.body), s.who, r.status, r.body, s.status)
		}
	}
}

func bodyText(b any) string {
	if s, ok := b.(string); ok {
		if len(s) > 60 {
			return s[:60] + "…"
		}
		return s
	}
	if b == nil {
		return ""
	}
	return "(json)"
}

const nsBase = "/v2/metadefs/namespaces"

func nsURL(ns string, rest ...string) string {
	return nsBase + "/" + url.PathEscape(ns) + strings.Join(rest, "")
}

// TestMetadefNamespacesAPI: every namespace endpoint with its statuses, the admin-only
// writes, protected deletes, private namespaces of other projects and bad input.
func TestMetadefNamespacesAPI(t *testing.T) {
	e, _ := newMetadefEnv(t, false)
	create := `{"namespace":"Test::NS","display_name":"Test","description":"d","visibility":"public","protected":true,
		"resource_type_associations":[{"name":"OS::Glance::Image","prefix":"tst_"}],
		"properties":{"level":{"title":"Level","type":"integer","minimum":0}},
		"objects":[{"name":"Obj One","properties":{"speed":{"title":"Speed","type":"string"}}}],
		"tags":[{"name":"alpha"}]}`
	r := e.do("admin", "POST", nsBase, create, "Content-Type", "application/json")
	if r.status != http.StatusCreated || r.header.Get("Location") != e.srv.URL+"/v2/metadefs/namespaces/Test::NS" {
		t.Fatalf("create: %d %s %v", r.status, r.body, r.header)
	}
	m := r.json(t)
	if m["self"] != "/v2/metadefs/namespaces/Test::NS" || m["schema"] != "/v2/schemas/metadefs/namespace" ||
		m["owner"] != e.project["admin"] || m["protected"] != true || len(m["objects"].([]any)) != 1 {
		t.Fatalf("create answer: %v", m)
	}
	private := `{"namespace":"Priv::B","visibility":"private","owner":"` + e.project["b"] + `"}`
	e.run(t, []step{
		{"admin", "POST", nsBase, private, 201, nil},
		// Bad input changes nothing.
		{"admin", "POST", nsBase, create, 409, nil},
		{"admin", "POST", nsBase, `{"namespace":`, 400, nil},
		{"admin", "POST", nsBase, ``, 400, nil},
		{"admin", "POST", nsBase, `[]`, 400, nil},
		{"admin", "POST", nsBase, `{"display_name":"no name"}`, 400, nil},
		{"admin", "POST", nsBase, `{"namespace":42}`, 400, nil},
		{"admin", "POST", nsBase, `{"namespace":"X","protected":"yes"}`, 400, nil},
		{"admin", "POST", nsBase, `{"namespace":"X","visibility":"shared"}`, 400, nil},
		{"admin", "POST", nsBase, `{"namespace":"X","evil":true}`, 400, nil},
		{"admin", "POST", nsBase, `{"namespace":"` + strings.Repeat("x", 81) + `"}`, 400, nil},
		{"admin", "POST", nsBase, `{"namespace":"X","description":"` + strings.Repeat("d", 501) + `"}`, 400, nil},
		{"admin", "POST", nsBase, `{"namespace":"X","self":"/v2/x"}`, 403, nil},
		{"admin", "POST", nsBase, `{"namespace":"X","properties":{"p":{"type":"string"}}}`, 400, nil},
		{"admin", "POST", nsBase, `{"namespace":"X","objects":[{"name":"o"},{"name":"o"}]}`, 409, nil},
		{"admin", "GET", nsURL("X"), nil, 404, nil},
		// Writes are for admins.
		{"member-a", "POST", nsBase, `{"namespace":"Mine"}`, 403, nil},
		{"member-a", "PUT", nsURL("Test::NS"), `{"namespace":"Test::NS"}`, 403, nil},
		{"member-a", "DELETE", nsURL("Test::NS"), nil, 403, nil},
		{"member-a", "DELETE", nsURL("Test::NS", "/objects"), nil, 403, nil},
		// Another project's private namespace is invisible, whatever the request.
		{"member-a", "GET", nsURL("Priv::B"), nil, 404, nil},
		{"member-a", "DELETE", nsURL("Priv::B"), nil, 404, nil},
		{"member-a", "GET", nsURL("Priv::B", "/objects"), nil, 404, nil},
		{"member-b", "GET", nsURL("Priv::B"), nil, 200, nil},
		{"member-b", "PUT", nsURL("Priv::B"), `{"namespace":"Priv::B"}`, 403, nil},
		{"reader-a", "GET", nsURL("Test::NS"), nil, 200, nil},
		{"", "GET", nsURL("Test::NS"), nil, 401, nil},
		{"admin", "GET", nsURL("No::Such"), nil, 404, nil},
		{"admin", "PATCH", nsURL("Test::NS"), `{}`, 405, nil},
		// Protected: no delete, not of its contents either.
		{"admin", "DELETE", nsURL("Test::NS"), nil, 403, nil},
		{"admin", "DELETE", nsURL("Test::NS", "/objects"), nil, 403, nil},
		{"admin", "DELETE", nsURL("Test::NS", "/properties"), nil, 403, nil},
		{"admin", "DELETE", nsURL("Test::NS", "/tags"), nil, 403, nil},
		{"admin", "DELETE", nsURL("Test::NS", "/objects/Obj%20One"), nil, 403, nil},
		{"admin", "DELETE", nsURL("Test::NS", "/properties/level"), nil, 403, nil},
		{"admin", "DELETE", nsURL("Test::NS", "/tags/alpha"), nil, 403, nil},
		{"admin", "DELETE", nsURL("Test::NS", "/resource_types/OS::Glance::Image"), nil, 403, nil},
		// PUT: bad input, a taken name.
		{"admin", "PUT", nsURL("Test::NS"), `{"namespace":"Priv::B"}`, 409, nil},
		{"admin", "PUT", nsURL("Test::NS"), `{"namespace":"Test::NS","visibility":1}`, 400, nil},
		{"admin", "PUT", nsURL("No::Such"), `{"namespace":"No::Such"}`, 404, nil},
	})
	if r := e.do("admin", "PATCH", nsURL("Test::NS"), `{}`); !strings.Contains(r.header.Get("Allow"), "PUT") {
		t.Errorf("405 Allow: %q", r.header.Get("Allow"))
	}

	// Show: contents embedded; ?resource_type= prefixes the property names.
	m = e.do("member-a", "GET", nsURL("Test::NS")+"?resource_type=OS::Glance::Image", nil).json(t)
	if _, ok := m["properties"].(map[string]any)["tst_level"]; !ok {
		t.Fatalf("prefixed show: %v", m["properties"])
	}
	if tags := m["tags"].([]any); len(tags) != 1 || tags[0].(map[string]any)["name"] != "alpha" {
		t.Fatalf("tags in show: %v", m["tags"])
	}
	// PUT replaces the own fields and keeps the contents; protected false lets delete.
	r = e.do("admin", "PUT", nsURL("Test::NS"), `{"namespace":"Test::NS","visibility":"private","protected":false,"display_name":"New"}`)
	m = r.json(t)
	if r.status != 200 || m["visibility"] != "private" || m["protected"] != false || m["description"] != nil || m["display_name"] != "New" {
		t.Fatalf("put: %d %v", r.status, m)
	}
	if m := e.do("admin", "GET", nsURL("Test::NS"), nil).json(t); len(m["objects"].([]any)) != 1 {
		t.Fatalf("contents after put: %v", m)
	}
	e.run(t, []step{
		{"member-a", "GET", nsURL("Test::NS"), nil, 404, nil}, // now private to the admin project
		{"admin", "DELETE", nsURL("Test::NS", "/objects"), nil, 204, nil},
		{"admin", "DELETE", nsURL("Test::NS", "/properties"), nil, 204, nil},
		{"admin", "DELETE", nsURL("Test::NS", "/tags"), nil, 204, nil},
		{"admin", "DELETE", nsURL("Test::NS"), nil, 204, nil},
		{"admin", "GET", nsURL("Test::NS"), nil, 404, nil},
		{"admin", "DELETE", nsURL("Test::NS"), nil, 404, nil},
	})
}

// TestMetadefNamespaceList: paging with first and next, filters, sort and bad parameters.
func TestMetadefNamespaceList(t *testing.T) {
	e, _ := newMetadefEnv(t, false)
	r := e.do("member-a", "GET", nsBase, nil)
	m := r.json(t)
	all := m["namespaces"].([]any)
	if r.status != 200 || len(all) != 25 || m["first"] != "/v2/metadefs/namespaces" || m["schema"] != "/v2/schemas/metadefs/namespaces" || m["next"] == nil {
		t.Fatalf("default page: %d first=%v next=%v len=%d", r.status, m["first"], m["next"], len(all))
	}
	// Walk the pages by next: every shipped namespace once.
	seen := map[string]bool{}
	next := nsBase + "?limit=10&sort_key=namespace&sort_dir=asc"
	var prev string
	for next != "" {
		m = e.do("member-a", "GET", next, nil).json(t)
		for _, ns := range m["namespaces"].([]any) {
			name := ns.(map[string]any)["namespace"].(string)
			if seen[name] || name < prev {
				t.Fatalf("%s twice or out of order", name)
			}
			seen[name], prev = true, name
		}
		next, _ = m["next"].(string)
	}
	if len(seen) != 33 {
		t.Fatalf("paged through %d namespaces, want 33", len(seen))
	}
	m = e.do("member-a", "GET", nsBase+"?resource_types=OS::Nova::Aggregate&limit=100", nil).json(t)
	for _, ns := range m["namespaces"].([]any) {
		as := ns.(map[string]any)["resource_type_associations"].([]any)
		if !slices.ContainsFunc(as, func(a any) bool { return a.(map[string]any)["name"] == "OS::Nova::Aggregate" }) {
			t.Fatalf("filter let through %v", ns)
		}
	}
	if n := len(m["namespaces"].([]any)); n != 8 {
		t.Fatalf("%d namespaces for OS::Nova::Aggregate, want 8", n)
	}
	e.run(t, []step{
		{"member-a", "GET", nsBase + "?limit=x", nil, 400, nil},
		{"member-a", "GET", nsBase + "?limit=-1", nil, 400, nil},
		{"member-a", "GET", nsBase + "?sort_dir=up", nil, 400, nil},
		{"member-a", "GET", nsBase + "?sort_key=owner", nil, 400, nil},
		{"member-a", "GET", nsBase + "?visibility=shared", nil, 400, nil},
		{"member-a", "GET", nsBase + "?marker=No::Such", nil, 404, nil},
		{"member-a", "GET", nsBase + "?visibility=private", nil, 200, nil},
		{"", "GET", nsBase, nil, 401, nil},
	})
}

// TestMetadefContentsAPI: objects, properties, tags and resource type associations.
func TestMetadefContentsAPI(t *testing.T) {
	e, _ := newMetadefEnv(t, false)
	ns := "Contents::NS"
	e.run(t, []step{{"admin", "POST", nsBase, `{"namespace":"Contents::NS","visibility":"public"}`, 201, nil}})
	objs, props, tags, rts := nsURL(ns, "/objects"), nsURL(ns, "/properties"), nsURL(ns, "/tags"), nsURL(ns, "/resource_types")
	e.run(t, []step{
		// Objects.
		{"admin", "POST", objs, `{"name":"CPU Limits","description":"d","properties":{"quota:cpu":{"title":"Q","type":"integer"}},"required":["quota:cpu"]}`, 201, nil},
		{"admin", "POST", objs, `{"name":"CPU Limits"}`, 409, nil},
		{"admin", "POST", objs, `{"name":""}`, 400, nil},
		{"admin", "POST", objs, `{"name":"x","properties":{"p":{"title":"P","type":"nope"}}}`, 400, nil},
		{"admin", "POST", objs, `{"name":"x","created_at":"2020-01-01T00:00:00Z"}`, 403, nil},
		{"admin", "POST", objs, `not json`, 400, nil},
		{"member-a", "POST", objs, `{"name":"y"}`, 403, nil},
		{"reader-a", "GET", objs + "/CPU%20Limits", nil, 200, nil},
		{"reader-a", "GET", objs + "/nope", nil, 404, nil},
		{"admin", "PUT", objs + "/CPU%20Limits", `{"name":"CPU Caps"}`, 200, nil},
		{"admin", "PUT", objs + "/nope", `{"name":"z"}`, 404, nil},
		{"admin", "POST", objs, `{"name":"Other"}`, 201, nil},
		{"admin", "PUT", objs + "/Other", `{"name":"CPU Caps"}`, 409, nil},
		{"admin", "DELETE", objs + "/Other", nil, 204, nil},
		{"admin", "DELETE", objs + "/Other", nil, 404, nil},
		// Properties.
		{"admin", "POST", props, `{"name":"hypervisor","title":"H","type":"string","enum":["kvm","qemu"]}`, 201, nil},
		{"admin", "POST", props, `{"name":"hypervisor","title":"H","type":"string"}`, 409, nil},
		{"admin", "POST", props, `{"name":"p","title":"P"}`, 400, nil},
		{"admin", "POST", props, `{"title":"P","type":"string"}`, 400, nil},
		{"admin", "POST", props, `{"name":"p","title":"P","type":"string","minLength":-1}`, 400, nil},
		{"admin", "POST", props, `{"name":"p","title":"P","type":"string","extra":1}`, 400, nil},
		{"member-a", "POST", props, `{"name":"p","title":"P","type":"string"}`, 403, nil},
		{"reader-a", "GET", props + "/hypervisor", nil, 200, nil},
		{"admin", "PUT", props + "/hypervisor", `{"name":"hypervisor_type","title":"HT","type":"string"}`, 200, nil},
		{"reader-a", "GET", props + "/hypervisor", nil, 404, nil},
		{"admin", "DELETE", props + "/nope", nil, 404, nil},
		// Tags.
		{"admin", "POST", tags, `{"tags":[{"name":"a"},{"name":"b"},{"name":"c"}]}`, 201, nil},
		{"admin", "POST", tags, `{"tags":[{"name":"d"},{"name":"d"}]}`, 409, nil},
		{"admin", "POST", tags, `{"tags":[{"name":"a"}]}`, 409, []string{"X-Openstack-Append", "True"}},
		{"admin", "POST", tags, `{"tags":[{"name":"d"}]}`, 201, []string{"X-Openstack-Append", "yes"}},
		{"admin", "POST", tags, `{"tags":"a"}`, 400, nil},
		{"admin", "POST", tags + "/e", nil, 201, nil},
		{"admin", "POST", tags + "/E", nil, 409, nil},
		{"member-a", "POST", tags + "/f", nil, 403, nil},
		{"reader-a", "GET", tags + "/e", nil, 200, nil},
		{"reader-a", "GET", tags + "/zz", nil, 404, nil},
		{"admin", "PUT", tags + "/e", `{"name":"a"}`, 409, nil},
		{"admin", "PUT", tags + "/e", `{"name":"f"}`, 200, nil},
		{"admin", "PUT", tags + "/f", `{"name":1}`, 400, nil},
		{"admin", "DELETE", tags + "/f", nil, 204, nil},
		{"admin", "GET", tags + "?sort_dir=sideways", nil, 400, nil},
		{"admin", "GET", tags + "?limit=x", nil, 400, nil},
		// Resource types and associations.
		{"reader-a", "GET", "/v2/metadefs/resource_types", nil, 200, nil},
		{"admin", "POST", rts, `{"name":"OS::Nova::Flavor","prefix":"hw:"}`, 201, nil},
		{"admin", "POST", rts, `{"name":"OS::Nova::Flavor"}`, 409, nil},
		{"admin", "POST", rts, `{"prefix":"x"}`, 400, nil},
		{"admin", "POST", rts, `{"name":"A","prefix":"` + strings.Repeat("p", 81) + `"}`, 400, nil},
		{"member-a", "POST", rts, `{"name":"OS::Glance::Image"}`, 403, nil},
		{"reader-a", "GET", rts, nil, 200, nil},
		{"admin", "DELETE", rts + "/OS::Nova::Flavor", nil, 204, nil},
		{"admin", "DELETE", rts + "/OS::Nova::Flavor", nil, 404, nil},
		{"admin", "DELETE", rts + "/No::Such", nil, 404, nil},
	})
	// The lists in Glance's shapes: objects an array, properties a dictionary.
	m := e.do("reader-a", "GET", objs, nil).json(t)
	if l := m["objects"].([]any); len(l) != 1 || l[0].(map[string]any)["name"] != "CPU Caps" ||
		l[0].(map[string]any)["self"] != "/v2/metadefs/namespaces/Contents::NS/objects/CPU Caps" {
		t.Fatalf("objects: %v", m)
	}
	m = e.do("reader-a", "GET", props, nil).json(t)
	if p := m["properties"].(map[string]any); len(p) != 1 || p["hypervisor_type"] == nil {
		t.Fatalf("properties: %v", m)
	}
	m = e.do("reader-a", "GET", tags+"?sort_key=name&sort_dir=asc&limit=2&marker=a", nil).json(t)
	if l := m["tags"].([]any); len(l) != 2 || l[0].(map[string]any)["name"] != "b" || l[1].(map[string]any)["name"] != "c" {
		t.Fatalf("tags page: %v", m)
	}
	m = e.do("reader-a", "GET", "/v2/metadefs/resource_types", nil).json(t)
	if rt := m["resource_types"].([]any); len(rt) < 5 {
		t.Fatalf("resource types: %v", m)
	}
	e.run(t, []step{
		{"admin", "DELETE", tags, nil, 204, nil},
		{"admin", "DELETE", objs, nil, 204, nil},
		{"admin", "DELETE", props, nil, 204, nil},
	})
	m = e.do("admin", "GET", nsURL(ns), nil).json(t)
	if m["tags"] != nil || m["objects"] != nil || m["properties"] != nil {
		t.Fatalf("after bulk deletes: %v", m)
	}
	if m := e.do("admin", "GET", tags, nil).json(t); len(m["tags"].([]any)) != 0 {
		t.Fatalf("tags after delete all: %v", m)
	}
}

// TestMetadefSchemas: the ten schemas, without a token, with the names tempest asserts.
func TestMetadefSchemas(t *testing.T) {
	e, _ := newMetadefEnv(t, false)
	for path, name := range map[string]string{
		"namespace": "namespace", "namespaces": "namespaces", "resource_type": "resource_type_association",
		"resource_types": "resource_type_associations", "object": "object", "objects": "objects",
		"property": "property", "properties": "properties", "tag": "tag", "tags": "tags",
	} {
		r := e.do("", "GET", "/v2/schemas/metadefs/"+path, nil)
		if r.status != 200 || r.json(t)["name"] != name {
			t.Errorf("schema %s: %d %s", path, r.status, r.body)
		}
	}
	m := e.do("", "GET", "/v2/schemas/metadefs/namespace", nil).json(t)
	if m["additionalProperties"] != false || m["definitions"].(map[string]any)["property"] == nil {
		t.Errorf("namespace schema: %v", m)
	}
	m = e.do("", "GET", "/v2/schemas/metadefs/properties", nil).json(t)
	if m["properties"].(map[string]any)["properties"].(map[string]any)["type"] != "object" {
		t.Errorf("properties schema is a dictionary collection: %v", m)
	}
	e.run(t, []step{{"", "GET", "/v2/schemas/metadefs/nope", nil, 404, nil}})
}

// TestImagePropertiesCheckedByMetadefs: with the check on, create and patch refuse values
// that do not fit their definitions (400) and change nothing; other values pass.
func TestImagePropertiesCheckedByMetadefs(t *testing.T) {
	e, _ := newMetadefEnv(t, true)
	e.run(t, []step{
		{"member-a", "POST", "/v2/images", map[string]any{"name": "bad", "hw_disk_bus": "floppy"}, 400, nil},
		{"member-a", "POST", "/v2/images", map[string]any{"name": "bad", "hw_video_ram": "lots"}, 400, nil},
		{"member-a", "POST", "/v2/images", map[string]any{"name": "bad", "hypervisor_type": "KVM"}, 400, nil},
	})
	if r := e.do("admin", "GET", "/v2/images", nil); len(names(t, r)) != 0 {
		t.Fatalf("a refused create made an image: %s", r.body)
	}
	r := e.do("member-a", "POST", "/v2/images", map[string]any{"name": "ok", "hw_disk_bus": "virtio", "hw_video_ram": "64", "my_own": "x"})
	if r.status != 201 || !strings.Contains(string(r.body), "hw_disk_bus") {
		t.Fatalf("valid create: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	r = e.patch("member-a", id, map[string]any{"op": "add", "path": "/hw_firmware_type", "value": "coreboot"})
	if r.status != 400 || !strings.Contains(string(r.body), "hw_firmware_type") {
		t.Fatalf("bad patch: %d %s", r.status, r.body)
	}
	if img := e.show(id); img["hw_firmware_type"] != nil {
		t.Fatalf("a refused patch changed the image: %v", img)
	}
	r = e.patch("member-a", id, map[string]any{"op": "replace", "path": "/hw_disk_bus", "value": "scsi"},
		map[string]any{"op": "add", "path": "/hw_firmware_type", "value": "uefi"})
	if r.status != 200 {
		t.Fatalf("valid patch: %d %s", r.status, r.body)
	}
}

// TestImagePropertiesUncheckedByDefault: without the flag any value is stored.
func TestImagePropertiesUncheckedByDefault(t *testing.T) {
	e, _ := newMetadefEnv(t, false)
	e.run(t, []step{{"member-a", "POST", "/v2/images", map[string]any{"name": "free", "hw_disk_bus": "floppy"}, 201, nil}})
}
