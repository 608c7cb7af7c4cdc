package imageapi_test

import (
	"strings"
	"testing"
)

// TestRoutingEdges: what the router answers for paths and methods no route takes, and for
// the spellings of a path it accepts (a trailing slash, a minor version, an upper-case image
// id, escaped segments), in Glance's error format with the Allow header on 405.
func TestRoutingEdges(t *testing.T) {
	e := newEnv(t)
	id := e.create("member-a", map[string]any{"name": "edge"})
	upper := strings.ToUpper(id)
	cases := []struct {
		method, path string
		status       int
		allow        string
		message      string // the JSON error body's message, or a piece of a success body
	}{
		{"GET", "/v2/nothing", 404, "", "The resource could not be found."},
		{"GET", "/v2/images/" + id + "/nothing", 404, "", "The resource could not be found."},
		{"GET", "/v2//images", 404, "", "The resource could not be found."},
		{"GET", "/v2/images//file", 404, "", "The resource could not be found."},
		{"PUT", "/v2/images", 405, "GET, POST", "The method PUT is not allowed for this resource."},
		{"HEAD", "/v2/info/import", 200, "", ""},
		{"POST", "/v2/images/" + id, 405, "GET, PATCH, DELETE", "The method POST is not allowed for this resource."},
		{"POST", "/v2/images/" + id + "/file", 405, "PUT, GET", "The method POST is not allowed for this resource."},
		{"GET", "/v2/images/" + id + "/tags/x", 405, "PUT, DELETE", "The method GET is not allowed for this resource."},
		{"PATCH", "/v2/images/" + id + "/members/x", 405, "GET, PUT, DELETE", "The method PATCH is not allowed for this resource."},
		{"GET", "/v2/images/" + id + "/actions/deactivate", 405, "POST", "The method GET is not allowed for this resource."},
		// A trailing slash after a collection is its empty member, as tempest's null-id tests
		// expect of Glance.
		{"GET", "/v2/images/", 404, "", "The resource could not be found."},
		{"DELETE", "/v2/images/", 404, "", "The resource could not be found."},
		{"GET", "/v2/images/" + id + "/members/", 404, "", "The resource could not be found."},
		{"GET", "/v2.15/images", 200, "", `"images"`},
		{"GET", "/v2/images/" + upper, 200, "", `"id":"` + id + `"`},
		{"GET", "/v2/images/" + upper + "/", 200, "", `"id":"` + id + `"`},
		{"GET", "/v2/images/%31", 404, "", "No image found with ID 1"},
		{"GET", "/v2/images/.", 404, "", "No image found with ID ."},
		{"GET", "/v2/images/..", 404, "", "No image found with ID .."},
		{"GET", "/v2/images/" + id + "/../" + id, 404, "", "The resource could not be found."},
		{"GET", "/v2/images/a%2Fb", 404, "", "No image found with ID a/b"},
		{"GET", "/v2/schemas/image/", 200, "", `"name":"image"`},
		{"DELETE", "/v2/schemas/image", 405, "GET", "The method DELETE is not allowed for this resource."},
		{"GET", "/v3/images", 300, "", `"versions"`},
		{"GET", "/v2", 200, "", `"version"`},
		{"GET", "/", 300, "", `"versions"`},
		{"POST", "/", 405, "GET", "The method POST is not allowed for this resource."},
	}
	for _, c := range cases {
		r := e.do("member-a", c.method, c.path, nil, "Accept", "application/json")
		if r.status != c.status || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want %d Allow %q: %s", c.method, c.path, r.status, r.header.Get("Allow"), c.status, c.allow, r.body)
			continue
		}
		if r.status >= 400 && c.method != "HEAD" {
			if msg := r.json(t)["message"]; msg != c.message+"<br /><br />\n\n\n" {
				t.Errorf("%s %s: message %q, want %q", c.method, c.path, msg, c.message)
			}
		} else if !strings.Contains(string(r.body), c.message) {
			t.Errorf("%s %s: body %s lacks %s", c.method, c.path, r.body, c.message)
		}
	}
}
