package identityapi

import (
	"fmt"
	"testing"
)

// TestAccessMatrix: the identity API for the five kinds of caller of the registry matrix
// (anonymous, a reader of A, a member of A, a member of B, the admin), each cell an exact
// status.
func TestAccessMatrix(t *testing.T) {
	ta := newTestAPI(t, Options{})
	a, b := ta.mustCreateProject("a"), ta.mustCreateProject("b")
	readerA := ta.mustCreateUser("reader-a", "pw-r", a, "reader")
	ta.mustCreateUser("member-a", "pw-m", a, "member")
	ta.mustCreateUser("member-b", "pw-b", b, "member")
	tokens := []string{"", ta.token("reader-a", "pw-r", "a"), ta.token("member-a", "pw-m", "a"),
		ta.token("member-b", "pw-b", "b"), ta.adminToken}
	names := []string{"anonymous", "reader-a", "member-a", "member-b", "admin"}
	cells := []struct {
		name         string
		method, path string
		body         func(i int) string
		want         []int
	}{
		{"list projects", "GET", "/identity/v3/projects", nil, []int{401, 403, 403, 403, 200}}, // Keystone: admin only; users list their own via /users/{id}/projects
		{"show project a", "GET", "/identity/v3/projects/" + a.ID, nil, []int{401, 200, 200, 403, 200}},
		{"create project", "POST", "/identity/v3/projects", func(i int) string {
			return fmt.Sprintf(`{"project":{"name":"new-%d"}}`, i)
		}, []int{401, 403, 403, 403, 201}},
		{"list users", "GET", "/identity/v3/users", nil, []int{401, 403, 403, 403, 200}},
		{"show reader-a", "GET", "/identity/v3/users/" + readerA.ID, nil, []int{401, 200, 403, 403, 200}},
		{"create user", "POST", "/identity/v3/users", func(i int) string {
			return fmt.Sprintf(`{"user":{"name":"u-%d","password":"x"}}`, i)
		}, []int{401, 403, 403, 403, 201}},
		{"grant a role", "PUT", "/identity/v3/projects/" + b.ID + "/users/" + readerA.ID + "/roles/role-member", nil, []int{401, 403, 403, 403, 204}},
		{"role assignments", "GET", "/identity/v3/role_assignments", nil, []int{401, 403, 403, 403, 200}},
		{"catalog", "GET", "/identity/v3/auth/catalog", nil, []int{401, 200, 200, 200, 200}},
		{"discovery", "GET", "/identity/v3", nil, []int{200, 200, 200, 200, 200}},
	}
	for _, c := range cells {
		for i, tok := range tokens {
			body := ""
			if c.body != nil {
				body = c.body(i)
			}
			resp, got := ta.do(c.method, c.path, tok, body)
			if resp.StatusCode != c.want[i] {
				t.Errorf("%s as %s: %d, want %d: %s", c.name, names[i], resp.StatusCode, c.want[i], got)
			}
		}
	}
}
