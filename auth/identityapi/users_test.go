package identityapi

import (
	"context"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/auth"
)

func TestUsers(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	ctx := context.Background()
	demo := ta.mustCreateProject("demo")
	aliceU := ta.mustCreateUser("alice", "alice-pw", demo, auth.RoleMember)
	bobU := ta.mustCreateUser("bob", "bob-pw", demo, auth.RoleReader)
	alice := ta.token("alice", "alice-pw", "demo")
	admin := ta.adminToken
	const us = "/identity/v3/users"
	ta.run([]call{
		{name: "create", method: "POST", path: us, token: admin, status: 201,
			body: `{"user":{"name":"carol","default_project_id":"` + demo.ID + `","password":"carol-pw","email":"c@example.com","description":"Carol","enabled":true,"options":{}}}`,
			want: []string{`"name":"carol"`, `"domain_id":"default"`, `"default_project_id":"` + demo.ID + `"`, `"email":"c@example.com"`, `"enabled":true`, `"password_expires_at":null`, `"links":{"self":"` + ta.srv.URL + `/identity/v3/users/`}},
		{name: "create without password", method: "POST", path: us, token: admin, status: 201, body: `{"user":{"name":"dave","password":null}}`},
		{name: "create duplicate", method: "POST", path: us, token: admin, status: 409, body: `{"user":{"name":"Alice","password":"x"}}`},
		{name: "create non-admin", method: "POST", path: us, token: alice, status: 403, body: `{"user":{"name":"eve","password":"x"}}`, want: []string{"identity:create_user"}},
		{name: "create unknown default project", method: "POST", path: us, token: admin, status: 400, body: `{"user":{"name":"eve","default_project_id":"nosuch"}}`},
		{name: "create other domain", method: "POST", path: us, token: admin, status: 404, body: `{"user":{"name":"eve","domain_id":"nosuch"}}`},
		{name: "create password too long", method: "POST", path: us, token: admin, status: 400, body: `{"user":{"name":"eve","password":"` + strings.Repeat("p", 100) + `"}}`},
		{name: "create malformed", method: "POST", path: us, token: admin, status: 400, body: `{"user":{"name":`},
		{name: "create no user", method: "POST", path: us, token: admin, status: 400, body: `{}`},

		{name: "list", method: "GET", path: us, token: admin, status: 200, want: []string{`"users":[`, `"name":"admin"`, `"name":"alice"`, `"name":"carol"`}},
		{name: "list by name", method: "GET", path: us + "?name=alice", token: admin, status: 200, want: []string{`"users":[{"id":"` + aliceU.ID + `"`}},
		{name: "list by unknown name", method: "GET", path: us + "?name=nosuch", token: admin, status: 200, want: []string{`"users":[]`}},
		{name: "list non-admin", method: "GET", path: us, token: alice, status: 403},

		{name: "show", method: "GET", path: us + "/" + bobU.ID, token: admin, status: 200, want: []string{`"name":"bob"`}},
		{name: "show self", method: "GET", path: us + "/" + aliceU.ID, token: alice, status: 200, want: []string{`"name":"alice"`}},
		{name: "show other non-admin", method: "GET", path: us + "/" + bobU.ID, token: alice, status: 403},
		{name: "show unknown", method: "GET", path: us + "/nosuch", token: admin, status: 404, want: []string{"Could not find user: nosuch."}},

		{name: "update non-admin", method: "PATCH", path: us + "/" + aliceU.ID, token: alice, status: 403, body: `{"user":{"email":"x"}}`},
		{name: "update", method: "PATCH", path: us + "/" + bobU.ID, token: admin, status: 200, body: `{"user":{"email":"b@example.com","password":"bob-pw2","default_project_id":null}}`, want: []string{`"email":"b@example.com"`}},
		{name: "update name taken", method: "PATCH", path: us + "/" + bobU.ID, token: admin, status: 409, body: `{"user":{"name":"alice"}}`},
		{name: "update unknown", method: "PATCH", path: us + "/nosuch", token: admin, status: 404, body: `{"user":{"email":"x"}}`},
		{name: "update malformed", method: "PATCH", path: us + "/" + bobU.ID, token: admin, status: 400, body: `{"user":{"enabled":"no"}}`},

		{name: "user projects", method: "GET", path: us + "/" + aliceU.ID + "/projects", token: alice, status: 200, want: []string{`"projects":[{"id":"` + demo.ID + `"`}},
		{name: "user projects admin", method: "GET", path: us + "/" + bobU.ID + "/projects", token: admin, status: 200, want: []string{`"name":"demo"`}},
		{name: "user projects other", method: "GET", path: us + "/" + bobU.ID + "/projects", token: alice, status: 403},
		{name: "user projects unknown", method: "GET", path: us + "/nosuch/projects", token: admin, status: 404},
	})
	// The new password works, the old one does not; the default project was cleared.
	if _, err := ta.id.Authenticate(ctx, "bob", "bob-pw2"); err != nil {
		t.Errorf("new password: %v", err)
	}
	if _, err := ta.id.Authenticate(ctx, "bob", "bob-pw"); err == nil {
		t.Error("old password still accepted")
	}
	if u, _ := ta.id.GetUser(ctx, bobU.ID); u.DefaultProjectID != "" || u.Email != "b@example.com" {
		t.Errorf("stored user %+v", u)
	}
	ta.token("carol", "carol-pw", "")

	// Disabling a user ends its tokens; deleting it too, and its assignments go.
	ta.run([]call{
		{name: "disable", method: "PATCH", path: us + "/" + aliceU.ID, token: admin, status: 200, body: `{"user":{"enabled":false}}`, want: []string{`"enabled":false`}},
		{name: "disabled token", method: "GET", path: us + "/" + aliceU.ID, token: alice, status: 401},
		{name: "delete with the disabled token", method: "DELETE", path: us + "/" + bobU.ID, token: alice, status: 401},
		{name: "delete", method: "DELETE", path: us + "/" + bobU.ID, token: admin, status: 204},
		{name: "deleted", method: "GET", path: us + "/" + bobU.ID, token: admin, status: 404},
		{name: "delete again", method: "DELETE", path: us + "/" + bobU.ID, token: admin, status: 404},
		{name: "assignments gone", method: "GET", path: "/identity/v3/role_assignments?user.id=" + bobU.ID, token: admin, status: 200, want: []string{`"role_assignments":[]`}},
	})
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	demo := ta.mustCreateProject("demo")
	aliceU := ta.mustCreateUser("alice", "alice-pw", demo, auth.RoleMember)
	bobU := ta.mustCreateUser("bob", "bob-pw", demo, auth.RoleMember)
	alice := ta.token("alice", "alice-pw", "demo")
	path := "/identity/v3/users/" + aliceU.ID + "/password"
	ta.run([]call{
		{name: "wrong original", method: "POST", path: path, token: alice, status: 401, body: `{"user":{"password":"new-pw","original_password":"nope"}}`},
		{name: "no new password", method: "POST", path: path, token: alice, status: 400, body: `{"user":{"original_password":"alice-pw"}}`},
		{name: "someone else's", method: "POST", path: "/identity/v3/users/" + bobU.ID + "/password", token: alice, status: 403, body: `{"user":{"password":"x","original_password":"bob-pw"}}`},
		{name: "change", method: "POST", path: path, token: alice, status: 204, body: `{"user":{"password":"new-pw","original_password":"alice-pw"}}`},
	})
	ta.token("alice", "new-pw", "demo")
	resp, _ := ta.do("POST", "/identity/v3/auth/tokens", "", passwordAuth("alice", "alice-pw", "demo"))
	if resp.StatusCode != 401 {
		t.Errorf("old password: %d", resp.StatusCode)
	}
}
