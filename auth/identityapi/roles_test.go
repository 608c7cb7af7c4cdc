package identityapi

import (
	"context"
	"testing"

	"github.com/xloud/xloud-image/auth"
)

func TestRolesAndDomains(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	demo := ta.mustCreateProject("demo")
	ta.mustCreateUser("alice", "alice-pw", demo, auth.RoleMember)
	alice := ta.token("alice", "alice-pw", "demo")
	admin := ta.adminToken
	ta.run([]call{
		{name: "roles", method: "GET", path: "/identity/v3/roles", token: admin, status: 200, want: []string{`"roles":[{"id":"role-admin","name":"admin","domain_id":null,"description":null,"options":{},"links":{"self":"` + ta.srv.URL + `/identity/v3/roles/role-admin"}}`, `"name":"member"`, `"name":"reader"`}},
		{name: "roles by name", method: "GET", path: "/identity/v3/roles?name=member", token: admin, status: 200, want: []string{`"roles":[{"id":"role-member","name":"member"`}},
		{name: "roles by unknown name", method: "GET", path: "/identity/v3/roles?name=nosuch", token: admin, status: 200, want: []string{`"roles":[]`}},
		{name: "domain roles", method: "GET", path: "/identity/v3/roles?domain_id=default", token: admin, status: 200, want: []string{`"roles":[]`}},
		{name: "roles non-admin", method: "GET", path: "/identity/v3/roles", token: alice, status: 403},
		{name: "role", method: "GET", path: "/identity/v3/roles/role-reader", token: admin, status: 200, want: []string{`{"role":{"id":"role-reader","name":"reader"`}},
		{name: "role by name is not a lookup", method: "GET", path: "/identity/v3/roles/member", token: admin, status: 404, want: []string{"Could not find role: member."}},
		{name: "role non-admin", method: "GET", path: "/identity/v3/roles/role-reader", token: alice, status: 403},

		{name: "domains", method: "GET", path: "/identity/v3/domains", token: admin, status: 200, want: []string{`"domains":[{"id":"default","name":"Default","description":"The default domain","enabled":true`}},
		{name: "domains by name", method: "GET", path: "/identity/v3/domains?name=Default", token: admin, status: 200, want: []string{`"id":"default"`}},
		{name: "domains by other name", method: "GET", path: "/identity/v3/domains?name=Other", token: admin, status: 200, want: []string{`"domains":[]`}},
		{name: "domains non-admin", method: "GET", path: "/identity/v3/domains", token: alice, status: 403},
		{name: "domain", method: "GET", path: "/identity/v3/domains/default", token: alice, status: 200, want: []string{`{"domain":{"id":"default","name":"Default"`}},
		{name: "unknown domain", method: "GET", path: "/identity/v3/domains/Default", token: admin, status: 404, want: []string{"Could not find domain: Default."}},
		{name: "domain anonymous", method: "GET", path: "/identity/v3/domains/default", status: 401},
	})
}

func TestGrants(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	ctx := context.Background()
	demo := ta.mustCreateProject("demo")
	other := ta.mustCreateProject("other")
	aliceU := ta.mustCreateUser("alice", "alice-pw", demo, auth.RoleMember)
	bobU := ta.mustCreateUser("bob", "bob-pw", auth.Project{}, "")
	alice := ta.token("alice", "alice-pw", "demo")
	admin := ta.adminToken
	grant := func(p, u, r string) string { return "/identity/v3/projects/" + p + "/users/" + u + "/roles/" + r }
	ta.run([]call{
		{name: "grant", method: "PUT", path: grant(other.ID, bobU.ID, "role-reader"), token: admin, status: 204},
		{name: "grant again", method: "PUT", path: grant(other.ID, bobU.ID, "role-reader"), token: admin, status: 204},
		{name: "grant member", method: "PUT", path: grant(other.ID, bobU.ID, "role-member"), token: admin, status: 204},
		{name: "grant non-admin", method: "PUT", path: grant(demo.ID, bobU.ID, "role-member"), token: alice, status: 403, want: []string{"identity:create_grant"}},
		{name: "grant unknown project", method: "PUT", path: grant("nosuch", bobU.ID, "role-member"), token: admin, status: 404, want: []string{"Could not find project: nosuch."}},
		{name: "grant unknown user", method: "PUT", path: grant(demo.ID, "nosuch", "role-member"), token: admin, status: 404, want: []string{"Could not find user: nosuch."}},
		{name: "grant unknown role", method: "PUT", path: grant(demo.ID, bobU.ID, "role-owner"), token: admin, status: 404, want: []string{"Could not find role: role-owner."}},
		{name: "grant anonymous", method: "PUT", path: grant(demo.ID, bobU.ID, "role-member"), status: 401},

		{name: "check", method: "HEAD", path: grant(other.ID, bobU.ID, "role-reader"), token: admin, status: 204},
		{name: "check GET", method: "GET", path: grant(other.ID, bobU.ID, "role-member"), token: admin, status: 204},
		{name: "check absent", method: "HEAD", path: grant(other.ID, bobU.ID, "role-admin"), token: admin, status: 404},
		{name: "check absent GET", method: "GET", path: grant(demo.ID, bobU.ID, "role-admin"), token: admin, status: 404, want: []string{"Could not find role assignment with role: role-admin"}},
		{name: "check non-admin", method: "HEAD", path: grant(demo.ID, aliceU.ID, "role-member"), token: alice, status: 403},

		{name: "list grants", method: "GET", path: "/identity/v3/projects/" + other.ID + "/users/" + bobU.ID + "/roles", token: admin, status: 200, want: []string{`"roles":[{"id":"role-member","name":"member"`, `"name":"reader"`}},
		{name: "list grants none", method: "GET", path: "/identity/v3/projects/" + demo.ID + "/users/" + bobU.ID + "/roles", token: admin, status: 200, want: []string{`"roles":[]`}},
		{name: "list grants non-admin", method: "GET", path: "/identity/v3/projects/" + demo.ID + "/users/" + aliceU.ID + "/roles", token: alice, status: 403},
		{name: "list grants unknown user", method: "GET", path: "/identity/v3/projects/" + demo.ID + "/users/nosuch/roles", token: admin, status: 404},

		{name: "revoke non-admin", method: "DELETE", path: grant(other.ID, bobU.ID, "role-reader"), token: alice, status: 403},
		{name: "revoke", method: "DELETE", path: grant(other.ID, bobU.ID, "role-reader"), token: admin, status: 204},
		{name: "revoke again", method: "DELETE", path: grant(other.ID, bobU.ID, "role-reader"), token: admin, status: 404},
		{name: "revoke unknown role", method: "DELETE", path: grant(other.ID, bobU.ID, "role-owner"), token: admin, status: 404},
	})
	roles, _ := ta.id.RolesOn(ctx, bobU.ID, other.ID)
	if len(roles) != 1 || roles[0] != auth.RoleMember {
		t.Errorf("bob's roles on other: %v", roles)
	}
	// Revoking alice's only role ends her scoped token at once.
	ta.run([]call{
		{name: "revoke alice", method: "DELETE", path: grant(demo.ID, aliceU.ID, "role-member"), token: admin, status: 204},
		{name: "alice's token dead", method: "GET", path: "/identity/v3/auth/projects", token: alice, status: 401},
	})
}

func TestRoleAssignments(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	ctx := context.Background()
	demo := ta.mustCreateProject("demo")
	other := ta.mustCreateProject("other")
	aliceU := ta.mustCreateUser("alice", "alice-pw", demo, auth.RoleMember)
	bobU := ta.mustCreateUser("bob", "bob-pw", other, auth.RoleAdmin)
	ta.id.Grant(ctx, aliceU.ID, other.ID, auth.RoleReader)
	alice := ta.token("alice", "alice-pw", "demo")
	admin := ta.adminToken
	const ra = "/identity/v3/role_assignments"
	link := func(p, u, r string) string {
		return `"links":{"assignment":"` + ta.srv.URL + "/identity/v3/projects/" + p + "/users/" + u + "/roles/" + r + `"}`
	}
	ta.run([]call{
		{name: "all", method: "GET", path: ra, token: admin, status: 200, want: []string{
			`{"role":{"id":"role-member"},"user":{"id":"` + aliceU.ID + `"},"scope":{"project":{"id":"` + demo.ID + `"}},` + link(demo.ID, aliceU.ID, "role-member") + `}`,
			`"user":{"id":"` + bobU.ID + `"}`, `"user":{"id":"` + ta.adminID + `"}`, `"links":{"self":"` + ta.srv.URL + `/identity/v3/role_assignments","previous":null,"next":null}`}},
		{name: "by project with names", method: "GET", path: ra + "?scope.project.id=" + demo.ID + "&include_names=True", token: admin, status: 200, want: []string{
			`"role_assignments":[{"role":{"id":"role-member","name":"member"},"user":{"id":"` + aliceU.ID + `","name":"alice","domain":{"id":"default","name":"Default"}},"scope":{"project":{"id":"` + demo.ID + `","name":"demo","domain":{"id":"default","name":"Default"}}}`}},
		{name: "by user", method: "GET", path: ra + "?user.id=" + aliceU.ID, token: admin, status: 200, want: []string{`"role":{"id":"role-reader"},"user":{"id":"` + aliceU.ID + `"},"scope":{"project":{"id":"` + other.ID + `"}}`}},
		{name: "by user and project", method: "GET", path: ra + "?user.id=" + aliceU.ID + "&scope.project.id=" + other.ID, token: admin, status: 200, want: []string{`"role_assignments":[{"role":{"id":"role-reader"}`}},
		{name: "by role", method: "GET", path: ra + "?role.id=role-admin&scope.project.id=" + other.ID, token: admin, status: 200, want: []string{`"role_assignments":[{"role":{"id":"role-admin"},"user":{"id":"` + bobU.ID + `"}`}},
		{name: "effective", method: "GET", path: ra + "?effective&user.id=" + bobU.ID, token: admin, status: 200, want: []string{`"role":{"id":"role-admin"}`, `"role":{"id":"role-member"}`, `"role":{"id":"role-reader"}`}},
		{name: "effective by role", method: "GET", path: ra + "?effective=True&role.id=role-reader&scope.project.id=" + other.ID, token: admin, status: 200, want: []string{aliceU.ID, bobU.ID}},
		{name: "unknown user", method: "GET", path: ra + "?user.id=nosuch", token: admin, status: 200, want: []string{`"role_assignments":[]`}},
		{name: "groups", method: "GET", path: ra + "?group.id=g1", token: admin, status: 200, want: []string{`"role_assignments":[]`}},
		{name: "domain scope", method: "GET", path: ra + "?scope.domain.id=default", token: admin, status: 200, want: []string{`"role_assignments":[]`}},
		{name: "own", method: "GET", path: ra + "?user.id=" + aliceU.ID + "&include_names", token: alice, status: 200, want: []string{`"name":"alice"`}},
		{name: "all non-admin", method: "GET", path: ra, token: alice, status: 403, want: []string{"identity:list_role_assignments"}},
		{name: "other user non-admin", method: "GET", path: ra + "?user.id=" + bobU.ID, token: alice, status: 403},
		{name: "project non-admin", method: "GET", path: ra + "?scope.project.id=" + demo.ID, token: alice, status: 403},
		{name: "anonymous", method: "GET", path: ra, status: 401},
	})
	_, b := ta.do("GET", ra+"?role.id=role-admin&scope.project.id="+other.ID, admin, "")
	var out struct {
		RoleAssignments []any `json:"role_assignments"`
	}
	decodeJSON(t, b, &out)
	if len(out.RoleAssignments) != 1 {
		t.Errorf("role filter: %s", b)
	}
	_, b = ta.do("GET", ra+"?effective&user.id="+bobU.ID, admin, "")
	decodeJSON(t, b, &out)
	if len(out.RoleAssignments) != 3 {
		t.Errorf("effective admin: %s", b)
	}
}
