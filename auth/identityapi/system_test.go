package identityapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/auth"
)

// systemAuth is the body keystoneauth sends for a system-scoped password token.
func systemAuth(user, password string) string {
	return `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":` + quote(user) +
		`,"domain":{"name":"Default"},"password":` + quote(password) + `}}},"scope":{"system":{"all":true}}}}`
}

// TestSystemScope: roles on the system, granted and revoked through the API as tempest's
// dynamic credentials do, and tokens scoped to the system that carry those roles (and a
// catalog), end when the role is revoked, and act as cloud admins only with the admin role.
func TestSystemScope(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	demo := ta.mustCreateProject("demo")
	sysU := ta.mustCreateUser("sysadmin", "sys-pw", auth.Project{}, "")
	alice := ta.mustCreateUser("alice", "alice-pw", demo, auth.RoleMember)
	aliceTok := ta.token("alice", "alice-pw", "demo")
	admin := ta.adminToken
	const v3 = "/identity/v3"
	grant := func(u, r string) string { return v3 + "/system/users/" + u + "/roles/" + r }

	ta.run([]call{
		{name: "no system role, no system token", method: "POST", path: v3 + "/auth/tokens", body: systemAuth("sysadmin", "sys-pw"), status: 401},
		{name: "member cannot grant", method: "PUT", path: grant(sysU.ID, "role-admin"), token: aliceTok, status: 403},
		{name: "grant unknown role", method: "PUT", path: grant(sysU.ID, "role-owner"), token: admin, status: 404},
		{name: "grant unknown user", method: "PUT", path: grant("nosuch", "role-admin"), token: admin, status: 404},
		{name: "grant", method: "PUT", path: grant(sysU.ID, "role-admin"), token: admin, status: 204},
		{name: "check", method: "GET", path: grant(sysU.ID, "role-admin"), token: admin, status: 204},
		{name: "check not held", method: "GET", path: grant(alice.ID, "role-admin"), token: admin, status: 404},
		{name: "list", method: "GET", path: v3 + "/system/users/" + sysU.ID + "/roles", token: admin, status: 200, want: []string{`"name":"admin"`}},
		{name: "assignments of the system", method: "GET", path: v3 + "/role_assignments?scope.system=all&include_names", token: admin, status: 200, want: []string{
			`"scope":{"system":{"all":true}}`, `"name":"sysadmin"`, `/identity/v3/system/users/` + sysU.ID + `/roles/role-admin`}},
		{name: "malformed system scope", method: "POST", path: v3 + "/auth/tokens", status: 400, body: `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"sysadmin","domain":{"name":"Default"},"password":"sys-pw"}}},"scope":{"system":{"all":false}}}}`},
	})

	resp, body := ta.do("POST", v3+"/auth/tokens", "", systemAuth("sysadmin", "sys-pw"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("system token: %d %s", resp.StatusCode, body)
	}
	sysTok := resp.Header.Get("X-Subject-Token")
	var tok struct {
		Token struct {
			System  map[string]bool `json:"system"`
			Project any             `json:"project"`
			Roles   []struct{ Name string }
			Catalog []any
		}
	}
	decodeJSON(t, body, &tok)
	if !tok.Token.System["all"] || tok.Token.Project != nil || len(tok.Token.Catalog) == 0 || len(tok.Token.Roles) == 0 || tok.Token.Roles[0].Name != "admin" {
		t.Fatalf("system token body: %s", body)
	}
	ta.run([]call{
		{name: "system admin lists projects", method: "GET", path: v3 + "/projects", token: sysTok, status: 200, want: []string{`"name":"demo"`}},
		{name: "system admin token validates", method: "GET", path: v3 + "/auth/tokens", token: sysTok, header: []string{"X-Subject-Token", sysTok}, status: 200, want: []string{`"system":{"all":true}`}},
		{name: "system token catalog", method: "GET", path: v3 + "/auth/catalog", token: sysTok, status: 200},
		{name: "member cannot revoke", method: "DELETE", path: grant(sysU.ID, "role-admin"), token: aliceTok, status: 403},
		{name: "revoke", method: "DELETE", path: grant(sysU.ID, "role-admin"), token: admin, status: 204},
		{name: "revoke again", method: "DELETE", path: grant(sysU.ID, "role-admin"), token: admin, status: 404},
		{name: "revoked: the token ends at once", method: "GET", path: v3 + "/projects", token: sysTok, status: 401},
	})

	// A system reader is no admin.
	if err := ta.id.GrantSystem(t.Context(), sysU.ID, auth.RoleReader); err != nil {
		t.Fatal(err)
	}
	resp, body = ta.do("POST", v3+"/auth/tokens", "", systemAuth("sysadmin", "sys-pw"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("system reader token: %d %s", resp.StatusCode, body)
	}
	ta.run([]call{
		{name: "system reader cannot create projects", method: "POST", path: v3 + "/projects", token: resp.Header.Get("X-Subject-Token"), body: `{"project":{"name":"x"}}`, status: 403},
	})
}

// TestNameLimits: user names up to 255 characters (Keystone's limit; tempest's dynamic users
// pass 64), project names up to 64.
func TestNameLimits(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	user := func(n int) string {
		return `{"user":{"name":"` + strings.Repeat("u", n) + `","password":"pw","domain_id":"default"}}`
	}
	project := func(n int) string {
		return `{"project":{"name":"` + strings.Repeat("p", n) + `","domain_id":"default"}}`
	}
	ta.run([]call{
		{name: "user 255", method: "POST", path: "/identity/v3/users", token: ta.adminToken, body: user(255), status: 201},
		{name: "user 256", method: "POST", path: "/identity/v3/users", token: ta.adminToken, body: user(256), status: 400},
		{name: "project 64", method: "POST", path: "/identity/v3/projects", token: ta.adminToken, body: project(64), status: 201},
		{name: "project 65", method: "POST", path: "/identity/v3/projects", token: ta.adminToken, body: project(65), status: 400},
	})
}
