package imageapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestVersionsAndAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		who, method, path string
		want              int
	}{
		{"", "GET", "/", http.StatusMultipleChoices},
		{"", "GET", "/versions", http.StatusOK},
		{"", "GET", "/v2", http.StatusOK},
		{"", "GET", "/v3/images", http.StatusMultipleChoices}, // unknown version: the versions document
		{"", "GET", "/v2/schemas/image", http.StatusOK},
		{"", "GET", "/v2/schemas/images", http.StatusOK},
		{"", "GET", "/v2/schemas/member", http.StatusOK},
		{"", "GET", "/v2/schemas/members", http.StatusOK},
		{"", "GET", "/v2/images", http.StatusUnauthorized},
		{"", "POST", "/v2/images", http.StatusUnauthorized},
		{"", "GET", "/v2/info/import", http.StatusUnauthorized},
		{"reader-a", "GET", "/v2/images", http.StatusOK},
		{"reader-a", "GET", "/v2.7/images", http.StatusOK},       // a minor version prefix is v2
		{"reader-a", "GET", "/v2/images/", http.StatusNotFound},  // the empty image id, as Glance
		{"reader-a", "GET", "/v2/schemas/image/", http.StatusOK}, // elsewhere a trailing slash is ignored
		{"reader-a", "GET", "/v2/nothing", http.StatusNotFound},
		{"reader-a", "PUT", "/v2/images", http.StatusMethodNotAllowed},
		{"reader-a", "POST", "/versions", http.StatusMethodNotAllowed},
	}
	for _, c := range cases {
		r := e.do(c.who, c.method, c.path, nil)
		if r.status != c.want {
			t.Errorf("%s %s as %q: %d, want %d: %s", c.method, c.path, c.who, r.status, c.want, r.body)
		}
		if !regexp.MustCompile(`^req-[0-9a-f-]{36}$`).MatchString(r.header.Get("X-Openstack-Request-Id")) {
			t.Errorf("%s %s: request id %q", c.method, c.path, r.header.Get("X-Openstack-Request-Id"))
		}
	}
	r := e.do("", "GET", "/", nil)
	vs := r.json(t)["versions"].([]any)
	first := vs[0].(map[string]any)
	var ids []string
	for _, v := range vs {
		ids = append(ids, v.(map[string]any)["id"].(string))
	}
	// Every version whose features are served: tasks of an image (2.12) and usage (2.13) too.
	if strings.Join(ids, ",") != "v2.15,v2.13,v2.12,v2.9,v2.7,v2.6,v2.5,v2.4,v2.3,v2.2,v2.1,v2.0" {
		t.Errorf("versions: %v", ids)
	}
	if first["status"] != "CURRENT" || first["links"].([]any)[0].(map[string]any)["href"] != e.srv.URL+"/v2/" {
		t.Fatalf("versions: %s", r.body)
	}
	if r := e.do("reader-a", "PUT", "/v2/images", nil); r.header.Get("Allow") != "GET, POST" {
		t.Fatalf("405 Allow: %q", r.header.Get("Allow"))
	}
	// Bad tokens and non-Keystone credentials are 401 as well.
	for _, h := range [][]string{{"X-Auth-Token", "nope"}, {"Authorization", "Basic YWRtaW46YWRtaW4tcHc="}} {
		if r := e.do("", "GET", "/v2/images", nil, h...); r.status != http.StatusUnauthorized {
			t.Errorf("%v: %d", h, r.status)
		}
	}
}

func TestVersionsUnderAPrefix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mux := http.NewServeMux()
	mux.Handle("/image/", http.StripPrefix("/image", e.srv.Config.Handler))
	e.srv.Config.Handler = mux
	r := e.do("", "GET", "/image/versions", nil)
	href := r.json(t)["versions"].([]any)[0].(map[string]any)["links"].([]any)[0].(map[string]any)["href"]
	if r.status != http.StatusOK || href != e.srv.URL+"/image/v2/" {
		t.Fatalf("versions under /image: %d %v", r.status, href)
	}
	r = e.do("member-a", "POST", "/image/v2/images", map[string]any{"name": "x"})
	id, _ := r.json(t)["id"].(string)
	if r.status != http.StatusCreated || r.header.Get("Location") != e.srv.URL+"/image/v2/images/"+id {
		t.Fatalf("create under /image: %d %v", r.status, r.header)
	}
	if r := e.do("member-a", "GET", "/image/v2/images/"+id, nil); r.status != http.StatusOK || r.json(t)["self"] != "/v2/images/"+id {
		t.Fatalf("image under /image: %d %s", r.status, r.body)
	}
}

// TestErrorBodies: Glance's error body follows Accept (§1.10).
func TestErrorBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const id = "0b7e5b21-3c34-4bb8-a1f0-5d9f1f3b2c11"
	cases := []struct {
		accept []string // nil: no header
		ctype  string
		body   string
	}{
		{[]string{"*/*"}, "text/html; charset=UTF-8", "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  No image found with ID " + id + "<br /><br />\n\n\n\n </body>\n</html>"},
		{nil, "text/html; charset=UTF-8", ""},
		{[]string{"text/html"}, "text/html; charset=UTF-8", ""},
		{[]string{"application/json"}, "application/json", `{"code":"404 Not Found","message":"No image found with ID ` + id + `\u003cbr /\u003e\u003cbr /\u003e\n\n\n","title":"Not Found"}`},
		{[]string{"application/json;q=0.9, text/html;q=0.5"}, "application/json", ""},
		{[]string{""}, "text/plain; charset=UTF-8", "404 Not Found\n\nNo image found with ID " + id + "\n\n   "},
		{[]string{"application/xml"}, "text/plain; charset=UTF-8", ""},
	}
	for _, c := range cases {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v2/images/"+id, nil)
		req.Header.Set("X-Auth-Token", e.token["member-a"])
		if c.accept != nil {
			req.Header["Accept"] = c.accept
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 404 || res.Header.Get("Content-Type") != c.ctype || (c.body != "" && string(b) != c.body) {
			t.Errorf("Accept %q: %d %s %q", c.accept, res.StatusCode, res.Header.Get("Content-Type"), b)
		}
	}
}

// TestImageRepresentation: every base field, null where unset, extras flat, relative links,
// times without fractions (§1.3).
func TestImageRepresentation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("member-a", "POST", "/v2/images", map[string]any{"name": "cirros", "disk_format": "raw",
		"container_format": "bare", "os_distro": "cirros", "tags": []string{"t1", "t1", "t2"}, "min_ram": 64,
		"owner_specified.openstack.md5": ""})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	img := r.json(t)
	id := img["id"].(string)
	if r.header.Get("Location") != e.srv.URL+"/v2/images/"+id || r.header.Get("Openstack-Image-Import-Methods") != "glance-direct,web-download,glance-download" {
		t.Fatalf("create headers: %v", r.header)
	}
	want := map[string]any{
		"id": id, "name": "cirros", "status": "queued", "visibility": "shared", "protected": false,
		"os_hidden": false, "checksum": nil, "os_hash_algo": nil, "os_hash_value": nil, "owner": e.project["a"],
		"size": nil, "virtual_size": nil, "container_format": "bare", "disk_format": "raw", "min_ram": 64.0,
		"min_disk": 0.0, "tags": []any{"t1", "t2"}, "self": "/v2/images/" + id, "file": "/v2/images/" + id + "/file",
		"schema": "/v2/schemas/image", "os_distro": "cirros", "owner_specified.openstack.md5": "",
		"created_at": img["created_at"], "updated_at": img["updated_at"], "xloud_signature_status": "unsigned",
	}
	if !reflect.DeepEqual(img, want) {
		t.Fatalf("image:\n got %v\nwant %v", img, want)
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(img["created_at"].(string)) {
		t.Fatalf("created_at %v", img["created_at"])
	}
	if got := e.do("reader-a", "GET", "/v2/images/"+id, nil).json(t); !reflect.DeepEqual(got, img) {
		t.Fatalf("show differs from create: %v", got)
	}
	data := rawImage(4096)
	e.upload("member-a", id, data)
	img = e.show(id)
	if img["status"] != "active" || img["size"] != 4096.0 || img["checksum"] == nil || img["os_hash_algo"] != "sha256" ||
		len(img["os_hash_value"].(string)) != 64 {
		t.Fatalf("after upload: %v", img)
	}
}

// TestCreateRefusals: every refused create changes nothing.
func TestCreateRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	existing := e.create("member-a", map[string]any{"name": "there"})
	many := func(n int, prefix string) map[string]any {
		m := map[string]any{}
		for i := 0; i < n; i++ {
			m[fmt.Sprintf("%s%d", prefix, i)] = "v"
		}
		return m
	}
	tags := make([]string, 129)
	for i := range tags {
		tags[i] = fmt.Sprint("t", i)
	}
	cases := []struct {
		name string
		body any
		want int
	}{
		{"read-only status", map[string]any{"status": "active"}, 403},
		{"read-only checksum", map[string]any{"checksum": "x"}, 403},
		{"read-only size", map[string]any{"size": 1}, 403},
		{"read-only created_at", map[string]any{"created_at": "2020-01-01T00:00:00Z"}, 403},
		{"read-only self", map[string]any{"self": "/x"}, 403},
		{"read-only file", map[string]any{"file": "/x"}, 403},
		{"read-only schema", map[string]any{"schema": "/x"}, 403},
		{"read-only direct_url", map[string]any{"direct_url": "x"}, 403},
		{"read-only stores", map[string]any{"stores": "a"}, 403},
		{"read-only os_hash_value", map[string]any{"os_hash_value": "x"}, 403},
		{"read-only xloud_oci_reference", map[string]any{"xloud_oci_reference": "x/y:z"}, 403},
		{"reserved os_glance", map[string]any{"os_glance_import_task": "x"}, 403},
		{"reserved location", map[string]any{"location": "http://x"}, 403},
		{"reserved deleted", map[string]any{"deleted": "true"}, 403},
		{"reserved deleted_at", map[string]any{"deleted_at": "x"}, 403},
		{"locations", map[string]any{"locations": []any{}}, 403},
		{"non-string extra", map[string]any{"foo": 1}, 400},
		{"null extra", map[string]any{"foo": nil}, 400},
		{"object extra", map[string]any{"foo": map[string]any{}}, 400},
		{"extra key of 256", map[string]any{strings.Repeat("k", 256): "v"}, 400},
		{"extra value over 65535", map[string]any{"k": strings.Repeat("v", 65536)}, 400},
		{"name of 256", map[string]any{"name": strings.Repeat("n", 256)}, 400},
		{"name not a string", map[string]any{"name": 5}, 400},
		{"bad visibility", map[string]any{"visibility": "everyone"}, 400},
		{"public by a member", map[string]any{"visibility": "public"}, 403},
		{"owner of another project", map[string]any{"owner": "someone-else"}, 403},
		{"id not a UUID", map[string]any{"id": "abc"}, 400},
		{"duplicate id", map[string]any{"id": existing}, 409},
		{"negative min_disk", map[string]any{"min_disk": -1}, 400},
		{"min_disk a string", map[string]any{"min_disk": "1"}, 400},
		{"min_ram a fraction", map[string]any{"min_ram": 1.5}, 400},
		{"min_ram null", map[string]any{"min_ram": nil}, 400},
		{"protected a string", map[string]any{"protected": "yes"}, 400},
		{"bad disk_format", map[string]any{"disk_format": "qcow3"}, 400},
		{"bad container_format", map[string]any{"container_format": "zip"}, 400},
		{"tags not strings", map[string]any{"tags": []any{1}}, 400},
		{"tag of 256", map[string]any{"tags": []string{strings.Repeat("t", 256)}}, 400},
		{"129 tags", map[string]any{"tags": tags}, 413},
		{"129 properties", many(129, "p"), 413},
		{"kernel_id not a UUID", map[string]any{"kernel_id": "vmlinuz"}, 400},
		{"bad encryption key policy", map[string]any{"cinder_encryption_key_deletion_policy": "never"}, 400},
		{"array body", []any{}, 400},
		{"empty body", "", 400},
		{"not JSON", "{name:", 400},
		{"body over 1 MiB", map[string]any{"k": strings.Repeat("v", 1<<20)}, 413},
	}
	for _, c := range cases {
		r := e.do("member-a", "POST", "/v2/images", c.body)
		if r.status != c.want {
			t.Errorf("%s: %d, want %d: %s", c.name, r.status, c.want, r.body)
		}
	}
	if got := names(t, e.do("admin", "GET", "/v2/images?visibility=all", nil)); len(got) != 1 {
		t.Fatalf("refused creates left images: %v", got)
	}
	// What members may not do, an admin may.
	r := e.do("admin", "POST", "/v2/images", map[string]any{"name": "pub", "visibility": "public", "owner": e.project["b"]})
	if r.status != http.StatusCreated || r.json(t)["owner"] != e.project["b"] {
		t.Fatalf("admin create: %d %s", r.status, r.body)
	}
}

// TestPatch: both media types, Glance's semantics, and every refusal leaving the image as it
// was (§1.5).
func TestPatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create("member-a", map[string]any{"name": "p", "disk_format": "raw", "container_format": "bare", "foo": "bar"})
	op := func(o, path string, v ...any) map[string]any {
		m := map[string]any{"op": o, "path": path}
		if len(v) > 0 {
			m["value"] = v[0]
		}
		return m
	}
	before := e.show(id)
	hostile := []struct {
		name  string
		ctype string
		body  string
		want  int
	}{
		{"json media type", "application/json", `[{"op":"add","path":"/a","value":"b"}]`, 415},
		{"merge-patch media type", "application/merge-patch+json", `{"a":"b"}`, 415},
		{"no media type", "", `[]`, 415},
		{"not an array", "", `{"op":"add"}`, 400},
		{"op move", "", `[{"op":"move","from":"/a","path":"/b"}]`, 400},
		{"op test", "", `[{"op":"test","path":"/name","value":"p"}]`, 400},
		{"no op", "", `[{"path":"/name","value":"x"}]`, 400},
		{"path without /", "", `[{"op":"add","path":"name","value":"x"}]`, 400},
		{"path with //", "", `[{"op":"add","path":"//name","value":"x"}]`, 400},
		{"path ending in /", "", `[{"op":"add","path":"/name/","value":"x"}]`, 400},
		{"bad ~ escape", "", `[{"op":"add","path":"/a~2b","value":"x"}]`, 400},
		{"two tokens", "", `[{"op":"add","path":"/name/x","value":"x"}]`, 400},
		{"empty path", "", `[{"op":"add","path":"","value":"x"}]`, 400},
		{"missing value", "", `[{"op":"add","path":"/name"}]`, 400},
		{"read-only status", "", `[{"op":"replace","path":"/status","value":"active"}]`, 403},
		{"read-only id", "", `[{"op":"replace","path":"/id","value":"x"}]`, 403},
		{"read-only size", "", `[{"op":"replace","path":"/size","value":1}]`, 403},
		{"read-only checksum", "", `[{"op":"add","path":"/checksum","value":"x"}]`, 403},
		{"read-only xloud_oci_reference", "", `[{"op":"add","path":"/xloud_oci_reference","value":"x/y:z"}]`, 403},
		{"reserved os_glance", "", `[{"op":"add","path":"/os_glance_import_task","value":"x"}]`, 403},
		{"reserved deleted", "", `[{"op":"add","path":"/deleted","value":"x"}]`, 403},
		{"locations", "", `[{"op":"add","path":"/locations/-","value":{"url":"http://x","metadata":{}}}]`, 403},
		{"remove a base field", "", `[{"op":"remove","path":"/name"}]`, 403},
		{"replace a missing property", "", `[{"op":"replace","path":"/nothere","value":"x"}]`, 409},
		{"remove a missing property", "", `[{"op":"remove","path":"/nothere"}]`, 409},
		{"non-string property", "", `[{"op":"add","path":"/n","value":1}]`, 400},
		{"property key of 256", "", `[{"op":"add","path":"/` + strings.Repeat("k", 256) + `","value":"x"}]`, 400},
		{"name of 256", "", `[{"op":"replace","path":"/name","value":"` + strings.Repeat("n", 256) + `"}]`, 400},
		{"protected null", "", `[{"op":"replace","path":"/protected","value":null}]`, 400},
		{"bad visibility", "", `[{"op":"replace","path":"/visibility","value":"all"}]`, 400},
		{"public by a member", "", `[{"op":"replace","path":"/visibility","value":"public"}]`, 403},
		{"owner by a member", "", `[{"op":"replace","path":"/owner","value":"x"}]`, 403},
		{"good op then a bad one", "", `[{"op":"add","path":"/x","value":"y"},{"op":"replace","path":"/status","value":"active"}]`, 403},
		{"draft add of an existing property", "application/openstack-images-v2.0-json-patch", `[{"add":"/foo","value":"x"}]`, 409},
		{"draft with two ops", "application/openstack-images-v2.0-json-patch", `[{"add":"/a","replace":"/b","value":"x"}]`, 400},
		{"body over 1 MiB", "", `[{"op":"add","path":"/k","value":"` + strings.Repeat("v", 1<<20) + `"}]`, 413},
	}
	for _, c := range hostile {
		ctype := c.ctype
		if ctype == "" && c.name != "no media type" {
			ctype = "application/openstack-images-v2.1-json-patch"
		}
		r := e.do("member-a", "PATCH", "/v2/images/"+id, c.body, "Content-Type", ctype)
		if r.status != c.want {
			t.Errorf("%s: %d, want %d: %s", c.name, r.status, c.want, r.body)
		}
		if c.want == 415 && !strings.Contains(r.header.Get("Accept-Patch"), "application/openstack-images-v2.1-json-patch") {
			t.Errorf("%s: Accept-Patch %q", c.name, r.header.Get("Accept-Patch"))
		}
	}
	if after := e.show(id); !reflect.DeepEqual(after, before) {
		t.Fatalf("refused patches changed the image:\n%v\n%v", before, after)
	}
	// What the clients send (§3.2, §3.3).
	r := e.patch("member-a", id, op("add", "/foo", "baz"), op("add", "/name", "n2"), op("add", "/protected", true),
		op("add", "/tags", []string{"t1"}), op("add", "/visibility", "community"), op("replace", "/min_disk", 1),
		op("add", "/a~1b~0c", "escaped"), op("add", "/disk_format", "qcow2"), op("add", "/os_hidden", true))
	img := r.json(t)
	if r.status != 200 || img["foo"] != "baz" || img["name"] != "n2" || img["protected"] != true || img["visibility"] != "community" ||
		img["min_disk"] != 1.0 || img["a/b~c"] != "escaped" || img["disk_format"] != "qcow2" || img["os_hidden"] != true ||
		!reflect.DeepEqual(img["tags"], []any{"t1"}) {
		t.Fatalf("client patch: %d %v", r.status, img)
	}
	r = e.do("member-a", "PATCH", "/v2/images/"+id, `[{"replace":"/name","value":"draft"},{"remove":"/foo"}]`,
		"Content-Type", "application/openstack-images-v2.0-json-patch")
	if img := r.json(t); r.status != 200 || img["name"] != "draft" || img["foo"] != nil {
		t.Fatalf("draft patch: %d %s", r.status, r.body)
	}
	if r := e.patch("admin", id, op("replace", "/owner", e.project["b"])); r.status != 200 || r.json(t)["owner"] != e.project["b"] {
		t.Fatalf("admin owner change: %d %s", r.status, r.body)
	}
	// Formats change only while queued.
	act := e.create("member-a", map[string]any{"name": "act", "disk_format": "raw", "container_format": "bare"})
	e.upload("member-a", act, rawImage(512))
	if r := e.patch("member-a", act, op("replace", "/disk_format", "qcow2")); r.status != 403 {
		t.Fatalf("format of an active image: %d", r.status)
	}
	if r := e.patch("member-b", act, op("replace", "/name", "x")); r.status != 404 {
		t.Fatalf("stranger patch: %d", r.status)
	}
	if r := e.patch("reader-a", act, op("replace", "/name", "x")); r.status != 403 {
		t.Fatalf("reader patch: %d", r.status)
	}
}

func TestNonUUIDIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, c := range []struct{ method, path string }{
		{"GET", "/v2/images/abc"}, {"GET", "/v2/images/0B7E5B21-3C34-4BB8-A1F0-5D9F1F3B2C1"},
		{"DELETE", "/v2/images/abc"}, {"GET", "/v2/images/abc/file"}, {"PUT", "/v2/images/..%2f..%2fetc/tags/x"},
		{"GET", "/v2/images/abc/members"}, {"POST", "/v2/images/abc/actions/deactivate"},
	} {
		r := e.do("member-a", c.method, c.path, nil, "Content-Type", "application/octet-stream")
		if r.status != 404 {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
		}
	}
	r := e.patch("member-a", "abc", map[string]any{"op": "add", "path": "/x", "value": "y"})
	if r.status != 404 {
		t.Errorf("patch non-UUID: %d", r.status)
	}
}

// TestUpperCaseIDs: an image id in upper case addresses the same image (Glance on MySQL
// compares ids without case); the answers carry the canonical lower-case id.
func TestUpperCaseIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create("member-a", map[string]any{"name": "upper", "disk_format": "raw", "container_format": "bare"})
	upper := strings.ToUpper(id)
	r := e.do("member-a", "GET", "/v2/images/"+upper, nil)
	if r.status != 200 || r.json(t)["id"] != id {
		t.Fatalf("GET by upper-case id: %d %s", r.status, r.body)
	}
	if r := e.do("member-a", "PUT", "/v2/images/"+upper+"/tags/big", nil); r.status != 204 {
		t.Fatalf("tag by upper-case id: %d %s", r.status, r.body)
	}
	if r := e.patch("member-a", upper, map[string]any{"op": "replace", "path": "/name", "value": "UPPER"}); r.status != 200 {
		t.Fatalf("patch by upper-case id: %d %s", r.status, r.body)
	}
	got := e.do("member-a", "GET", "/v2/images/"+id, nil).json(t)
	if got["name"] != "UPPER" || fmt.Sprint(got["tags"]) != "[big]" {
		t.Fatalf("after changes by upper-case id: %v", got)
	}
	if r := e.do("member-a", "DELETE", "/v2/images/"+upper, nil); r.status != 204 {
		t.Fatalf("delete by upper-case id: %d %s", r.status, r.body)
	}
	if r := e.do("member-a", "GET", "/v2/images/"+id, nil); r.status != 404 {
		t.Fatalf("after delete: %d", r.status)
	}
}

// TestUpperCaseMemberIDs: member routes take the image id and the member id in upper case
// too (Glance on MySQL compares both without case); the answers carry the ids as stored,
// and a member differing only in case is the same member.
func TestUpperCaseMemberIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create("member-a", map[string]any{"name": "shared upper"})
	upper, pb := strings.ToUpper(id), e.project["b"]
	upperPB := strings.ToUpper(pb)
	if upperPB == pb {
		t.Fatalf("project id %s has no letters", pb)
	}
	if r := e.do("member-a", "POST", "/v2/images/"+upper+"/members", map[string]any{"member": pb}); r.status != 200 || r.json(t)["image_id"] != id {
		t.Fatalf("add member by upper-case image id: %d %s", r.status, r.body)
	}
	if r := e.do("member-a", "POST", "/v2/images/"+id+"/members", map[string]any{"member": upperPB}); r.status != 409 {
		t.Fatalf("add the member again in upper case: %d %s", r.status, r.body)
	}
	for _, who := range []string{"member-a", "member-b"} {
		r := e.do(who, "GET", "/v2/images/"+upper+"/members/"+upperPB, nil)
		if r.status != 200 || r.json(t)["member_id"] != pb || r.json(t)["image_id"] != id {
			t.Fatalf("%s shows the member by upper-case ids: %d %s", who, r.status, r.body)
		}
	}
	if r := e.do("member-b", "PUT", "/v2/images/"+upper+"/members/"+upperPB, map[string]any{"status": "accepted"}); r.status != 200 || r.json(t)["member_id"] != pb {
		t.Fatalf("accept by upper-case ids: %d %s", r.status, r.body)
	}
	if got := names(t, e.do("member-b", "GET", "/v2/images", nil)); !reflect.DeepEqual(got, []string{"shared upper"}) {
		t.Fatalf("accepted member lists %v", got)
	}
	if r := e.do("member-a", "GET", "/v2/images/"+upper+"/members", nil); r.status != 200 || len(r.json(t)["members"].([]any)) != 1 {
		t.Fatalf("members by upper-case image id: %d %s", r.status, r.body)
	}
	if r := e.do("member-a", "DELETE", "/v2/images/"+upper+"/members/"+upperPB, nil); r.status != 204 {
		t.Fatalf("remove member by upper-case ids: %d %s", r.status, r.body)
	}
	if r := e.do("member-b", "GET", "/v2/images/"+id, nil); r.status != 404 {
		t.Fatalf("removed member reads: %d", r.status)
	}
}

func TestTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create("member-a", map[string]any{"name": "t"})
	for _, c := range []struct {
		method, tag string
		want        int
	}{
		{"PUT", "a", 204}, {"PUT", "a", 204}, {"PUT", "with%20space", 204}, {"PUT", "sl%2Fash", 204},
		{"PUT", strings.Repeat("t", 256), 400}, {"DELETE", "nothere", 404}, {"DELETE", "a", 204},
	} {
		if r := e.do("member-a", c.method, "/v2/images/"+id+"/tags/"+c.tag, nil); r.status != c.want {
			t.Errorf("%s %s: %d, want %d %s", c.method, c.tag, r.status, c.want, r.body)
		}
	}
	if got := e.show(id)["tags"]; !reflect.DeepEqual(got, []any{"with space", "sl/ash"}) {
		t.Fatalf("tags %v", got)
	}
	for i := 2; i < 128; i++ {
		e.do("member-a", "PUT", fmt.Sprintf("/v2/images/%s/tags/t%d", id, i), nil)
	}
	if r := e.do("member-a", "PUT", "/v2/images/"+id+"/tags/one-too-many", nil); r.status != 413 {
		t.Fatalf("129th tag: %d", r.status)
	}
	if r := e.do("reader-a", "PUT", "/v2/images/"+id+"/tags/r", nil); r.status != 403 {
		t.Fatalf("reader tag: %d", r.status)
	}
}

func TestMembers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create("member-a", map[string]any{"name": "shared one"})
	priv := e.create("member-a", map[string]any{"name": "private one", "visibility": "private"})
	pb := e.project["b"]
	steps := []struct {
		who, method, path string
		body              any
		want              int
	}{
		{"member-b", "GET", "/v2/images/" + id, nil, 404},
		{"member-a", "POST", "/v2/images/" + id + "/members", map[string]any{"member": pb}, 200},
		{"member-a", "POST", "/v2/images/" + id + "/members", map[string]any{"member": pb}, 409},
		{"member-a", "POST", "/v2/images/" + id + "/members", map[string]any{}, 400},
		{"member-a", "POST", "/v2/images/" + id + "/members", map[string]any{"member": 5}, 400},
		{"member-a", "POST", "/v2/images/" + priv + "/members", map[string]any{"member": pb}, 403},
		{"member-a", "GET", "/v2/images/" + priv + "/members", nil, 403},
		{"member-b", "GET", "/v2/images/" + id, nil, 200}, // a pending member may read
		{"member-b", "GET", "/v2/images/" + id + "/members/" + pb, nil, 200},
		{"member-a", "PUT", "/v2/images/" + id + "/members/" + pb, map[string]any{"status": "accepted"}, 403},
		{"member-b", "PUT", "/v2/images/" + id + "/members/" + pb, map[string]any{"status": "maybe"}, 400},
		{"member-b", "PUT", "/v2/images/" + id + "/members/" + pb, map[string]any{}, 400},
		{"member-b", "PUT", "/v2/images/" + id + "/members/" + pb, map[string]any{"status": "accepted", "member": pb}, 200},
		{"member-b", "DELETE", "/v2/images/" + id + "/members/" + pb, nil, 403},
		{"member-a", "GET", "/v2/images/" + id + "/members/nobody", nil, 404},
		{"member-a", "DELETE", "/v2/images/" + id + "/members/nobody", nil, 404},
	}
	for _, s := range steps {
		if r := e.do(s.who, s.method, s.path, s.body); r.status != s.want {
			t.Errorf("%s %s %s: %d, want %d: %s", s.who, s.method, s.path, r.status, s.want, r.body)
		}
	}
	r := e.do("member-a", "GET", "/v2/images/"+id+"/members", nil)
	body := r.json(t)
	ms := body["members"].([]any)
	m := ms[0].(map[string]any)
	if body["schema"] != "/v2/schemas/members" || len(ms) != 1 || m["member_id"] != pb || m["status"] != "accepted" ||
		m["image_id"] != id || m["schema"] != "/v2/schemas/member" {
		t.Fatalf("members: %s", r.body)
	}
	if got := names(t, e.do("member-b", "GET", "/v2/images", nil)); !reflect.DeepEqual(got, []string{"shared one"}) {
		t.Fatalf("accepted member lists %v", got)
	}
	e.do("member-b", "PUT", "/v2/images/"+id+"/members/"+pb, map[string]any{"status": "rejected"})
	if got := names(t, e.do("member-b", "GET", "/v2/images", nil)); len(got) != 0 {
		t.Fatalf("rejected member lists %v", got)
	}
	if got := names(t, e.do("member-b", "GET", "/v2/images?member_status=rejected", nil)); len(got) != 1 {
		t.Fatalf("member_status=rejected lists %v", got)
	}
	if r := e.do("member-a", "DELETE", "/v2/images/"+id+"/members/"+pb, nil); r.status != 204 {
		t.Fatalf("remove member: %d", r.status)
	}
	if r := e.do("member-b", "GET", "/v2/images/"+id, nil); r.status != 404 {
		t.Fatalf("removed member reads: %d", r.status)
	}
}

func TestDeleteAndDeactivate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create("member-a", map[string]any{"name": "d", "disk_format": "raw", "container_format": "bare", "protected": true})
	queued := e.create("member-a", map[string]any{"name": "q"})
	e.upload("member-a", id, rawImage(1000))
	steps := []struct {
		who, method, path string
		want              int
	}{
		{"member-a", "POST", "/v2/images/" + queued + "/actions/deactivate", 403},
		{"reader-a", "POST", "/v2/images/" + id + "/actions/deactivate", 403},
		{"member-b", "POST", "/v2/images/" + id + "/actions/deactivate", 404},
		{"member-a", "POST", "/v2/images/" + id + "/actions/deactivate", 204},
		{"member-a", "POST", "/v2/images/" + id + "/actions/deactivate", 204}, // no-op
		{"member-a", "GET", "/v2/images/" + id + "/file", 403},
		{"admin", "GET", "/v2/images/" + id + "/file", 200},
		{"member-a", "POST", "/v2/images/" + id + "/actions/reactivate", 204},
		{"member-a", "GET", "/v2/images/" + id + "/file", 200},
		{"member-a", "DELETE", "/v2/images/" + id, 403}, // protected
		{"reader-a", "DELETE", "/v2/images/" + queued, 403},
		{"member-b", "DELETE", "/v2/images/" + queued, 404},
		{"member-a", "DELETE", "/v2/images/" + queued, 204},
		{"member-a", "GET", "/v2/images/" + queued, 404},
		{"member-a", "DELETE", "/v2/images/" + queued, 404},
	}
	for _, s := range steps {
		if r := e.do(s.who, s.method, s.path, nil); r.status != s.want {
			t.Errorf("%s %s %s: %d, want %d: %s", s.who, s.method, s.path, r.status, s.want, r.body)
		}
	}
	if img := e.show(id); img["status"] != "active" {
		t.Fatalf("after reactivate: %v", img["status"])
	}
	if img := e.show(queued); img["status"] != "deleted" {
		t.Fatalf("admin view of a deleted image: %v", img["status"])
	}
}

func TestInfoAndSchemas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("reader-a", "GET", "/v2/info/import", nil)
	if r.status != 200 || !reflect.DeepEqual(r.json(t)["import-methods"].(map[string]any)["value"], []any{"glance-direct", "web-download", "glance-download"}) {
		t.Fatalf("info/import: %d %s", r.status, r.body)
	}
	if r := e.do("reader-a", "GET", "/v2/info/stores", nil); r.status != 404 {
		t.Fatalf("info/stores: %d", r.status)
	}
	if r := e.do("reader-a", "GET", "/v2/info/usage", nil); r.status != 200 || string(r.body) != `{"usage":{}}` {
		t.Fatalf("info/usage: %d %s", r.status, r.body)
	}
	s := e.do("", "GET", "/v2/schemas/image", nil).json(t)
	props := s["properties"].(map[string]any)
	if _, ok := props["stores"]; ok {
		t.Fatal("the image schema has stores (glanceclient 4.1 breaks on it)")
	}
	for _, k := range []string{"id", "name", "os_hidden", "os_hash_value", "visibility", "tags", "locations", "os_distro"} {
		if _, ok := props[k]; !ok {
			t.Errorf("image schema lacks %s", k)
		}
	}
	if ref, _ := props["xloud_oci_reference"].(map[string]any); ref["readOnly"] != true {
		t.Errorf("image schema: xloud_oci_reference %v, want a read-only property", ref)
	}
	if props["os_distro"].(map[string]any)["is_base"] != false || s["additionalProperties"].(map[string]any)["type"] != "string" {
		t.Fatalf("image schema: %v", s)
	}
	var images struct {
		Properties struct {
			Images struct {
				Items map[string]any `json:"items"`
			} `json:"images"`
		} `json:"properties"`
	}
	json.Unmarshal(e.do("", "GET", "/v2/schemas/images", nil).body, &images)
	if images.Properties.Images.Items["name"] != "image" {
		t.Fatalf("images schema: %v", images)
	}
}
