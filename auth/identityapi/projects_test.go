package identityapi

import (
	"context"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/auth"
)

func TestProjects(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	demo := ta.mustCreateProject("demo")
	other := ta.mustCreateProject("other")
	ta.mustCreateUser("alice", "alice-pw", demo, auth.RoleMember)
	alice := ta.token("alice", "alice-pw", "demo")
	admin := ta.adminToken
	const ps = "/identity/v3/projects"
	ta.run([]call{
		{name: "create", method: "POST", path: ps, token: admin, status: 201, body: `{"project":{"name":"p1","description":"first","enabled":true,"domain_id":"default","tags":[],"options":{}}}`,
			want: []string{`"name":"p1"`, `"description":"first"`, `"domain_id":"default"`, `"parent_id":"default"`, `"is_domain":false`, `"enabled":true`, `"tags":[]`, `"links":{"self":"` + ta.srv.URL + `/identity/v3/projects/`}},
		{name: "create as OSC sends it", method: "POST", path: ps, token: admin, status: 201, body: `{"project":{"name":"p2","description":null,"enabled":false,"options":{},"tags":[]}}`, want: []string{`"enabled":false`}},
		{name: "create duplicate", method: "POST", path: ps, token: admin, status: 409, body: `{"project":{"name":"DEMO"}}`, want: []string{"Duplicate entry found with name DEMO"}},
		{name: "create non-admin", method: "POST", path: ps, token: alice, status: 403, body: `{"project":{"name":"p3"}}`, want: []string{"identity:create_project"}},
		{name: "create anonymous", method: "POST", path: ps, status: 401, body: `{"project":{"name":"p3"}}`},
		{name: "create malformed", method: "POST", path: ps, token: admin, status: 400, body: `{"project":`},
		{name: "create no project", method: "POST", path: ps, token: admin, status: 400, body: `{"name":"p3"}`},
		{name: "create no name", method: "POST", path: ps, token: admin, status: 400, body: `{"project":{}}`},
		{name: "create bad name", method: "POST", path: ps, token: admin, status: 400, body: `{"project":{"name":"a/b"}}`},
		{name: "create wrong type", method: "POST", path: ps, token: admin, status: 400, body: `{"project":{"name":"p3","enabled":"yes"}}`},
		{name: "create other domain", method: "POST", path: ps, token: admin, status: 404, body: `{"project":{"name":"p3","domain_id":"elsewhere"}}`},
		{name: "create nested", method: "POST", path: ps, token: admin, status: 400, body: `{"project":{"name":"p3","parent_id":"` + demo.ID + `"}}`},
		{name: "create domain", method: "POST", path: ps, token: admin, status: 400, body: `{"project":{"name":"p3","is_domain":true}}`},
		{name: "create oversized", method: "POST", path: ps, token: admin, status: 413, body: `{"project":{"name":"p3","description":"` + strings.Repeat("x", 1<<20) + `"}}`},

		{name: "list", method: "GET", path: ps, token: admin, status: 200, want: []string{`"projects":[`, `"name":"admin"`, `"name":"demo"`, `"name":"p1"`, `"links":{"self":"` + ta.srv.URL + `/identity/v3/projects","previous":null,"next":null}`}},
		{name: "list by name", method: "GET", path: ps + "?name=demo", token: admin, status: 200, want: []string{`"projects":[{"id":"` + demo.ID + `"`}},
		{name: "list by unknown name", method: "GET", path: ps + "?name=nosuch", token: admin, status: 200, want: []string{`"projects":[]`}},
		{name: "list by domain", method: "GET", path: ps + "?domain_id=default&name=demo", token: admin, status: 200, want: []string{demo.ID}},
		{name: "list by other domain", method: "GET", path: ps + "?domain_id=other", token: admin, status: 200, want: []string{`"projects":[]`}},
		{name: "list disabled", method: "GET", path: ps + "?enabled=false", token: admin, status: 200, want: []string{`"projects":[{`, `"name":"p2"`}},
		{name: "list domains-as-projects", method: "GET", path: ps + "?is_domain=true", token: admin, status: 200, want: []string{`"projects":[]`}},
		{name: "list non-admin", method: "GET", path: ps, token: alice, status: 403},
		{name: "list garbage token", method: "GET", path: ps, token: "garbage", status: 401},

		{name: "show", method: "GET", path: ps + "/" + demo.ID, token: admin, status: 200, want: []string{`{"project":{"id":"` + demo.ID + `","name":"demo"`}},
		{name: "HEAD show", method: "HEAD", path: ps + "/" + demo.ID, token: admin, status: 200},
		{name: "show own project", method: "GET", path: ps + "/" + demo.ID, token: alice, status: 200},
		{name: "show other project", method: "GET", path: ps + "/" + other.ID, token: alice, status: 403},
		{name: "show unknown non-admin", method: "GET", path: ps + "/nosuch", token: alice, status: 403},
		{name: "show unknown", method: "GET", path: ps + "/nosuch", token: admin, status: 404, want: []string{"Could not find project: nosuch."}},
		{name: "show by name is not a lookup", method: "GET", path: ps + "/demo", token: admin, status: 404},

		{name: "update", method: "PATCH", path: ps + "/" + other.ID, token: admin, status: 200, body: `{"project":{"name":"other2","description":"d","enabled":false}}`, want: []string{`"name":"other2"`, `"description":"d"`, `"enabled":false`}},
		{name: "update name taken", method: "PATCH", path: ps + "/" + other.ID, token: admin, status: 409, body: `{"project":{"name":"demo"}}`},
		{name: "update domain", method: "PATCH", path: ps + "/" + other.ID, token: admin, status: 404, body: `{"project":{"domain_id":"x"}}`},
		{name: "update malformed", method: "PATCH", path: ps + "/" + other.ID, token: admin, status: 400, body: `[]`},
		{name: "update unknown", method: "PATCH", path: ps + "/nosuch", token: admin, status: 404, body: `{"project":{"name":"x"}}`},
		{name: "update non-admin", method: "PATCH", path: ps + "/" + demo.ID, token: alice, status: 403, body: `{"project":{"name":"x"}}`},

		{name: "delete non-admin", method: "DELETE", path: ps + "/" + other.ID, token: alice, status: 403},
		{name: "delete", method: "DELETE", path: ps + "/" + other.ID, token: admin, status: 204},
		{name: "deleted", method: "GET", path: ps + "/" + other.ID, token: admin, status: 404},
		{name: "delete again", method: "DELETE", path: ps + "/" + other.ID, token: admin, status: 404},
	})
	p, err := ta.id.ProjectByName(context.Background(), "p1")
	if err != nil || p.Description != "first" || !p.Enabled {
		t.Errorf("stored project %+v, %v", p, err)
	}
}

// A token scoped to a deleted project stops working, and so does the scoped caller's access.
func TestDeletedProjectTokens(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	demo := ta.mustCreateProject("demo")
	ta.mustCreateUser("alice", "alice-pw", demo, auth.RoleMember)
	alice := ta.token("alice", "alice-pw", "demo")
	ta.run([]call{
		{name: "delete", method: "DELETE", path: "/identity/v3/projects/" + demo.ID, token: ta.adminToken, status: 204},
		{name: "token dead", method: "GET", path: "/identity/v3/auth/projects", token: alice, status: 401},
		{name: "no more assignments", method: "GET", path: "/identity/v3/role_assignments?scope.project.id=" + demo.ID, token: ta.adminToken, status: 200, want: []string{`"role_assignments":[]`}},
	})
}
