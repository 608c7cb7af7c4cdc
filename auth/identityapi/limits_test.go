package identityapi

import (
	"encoding/json"
	"testing"

	"github.com/xloud/xloud-image/auth"
)

// TestUnifiedLimitsAPI: Keystone's registered limits and limits, their JSON, admin-only
// writes, a project's members reading its limits only, and bad input refused with nothing
// stored.
func TestUnifiedLimitsAPI(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	demo := ta.mustCreateProject("demo")
	other := ta.mustCreateProject("other")
	ta.mustCreateUser("alice", "alice-pw", demo, auth.RoleMember)
	alice := ta.token("alice", "alice-pw", "demo")
	admin := ta.adminToken
	glance := ServiceID("image")
	const rl, ls = "/identity/v3/registered_limits", "/identity/v3/limits"
	created := func(path, body string) string {
		resp, b := ta.do("POST", path, admin, body)
		var out map[string][]struct{ ID string }
		if resp.StatusCode != 201 || json.Unmarshal(b, &out) != nil {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
		for _, v := range out {
			return v[0].ID
		}
		return ""
	}
	size := created(rl, `{"registered_limits":[{"service_id":"`+glance+`","resource_name":"image_size_total","default_limit":1000,"region_id":"RegionOne","description":"MiB"}]}`)
	limit := created(ls, `{"limits":[{"project_id":"`+demo.ID+`","service_id":"`+glance+`","region_id":"RegionOne","resource_name":"image_size_total","resource_limit":50}]}`)
	ta.run([]call{
		{name: "services by name", method: "GET", path: "/identity/v3/services?name=glance", token: admin, status: 200,
			want: []string{`"services":[{"id":"` + glance + `","type":"image","name":"glance","enabled":true`}},
		{name: "service", method: "GET", path: "/identity/v3/services/" + glance, token: admin, status: 200, want: []string{`"type":"image"`}},
		{name: "service unknown", method: "GET", path: "/identity/v3/services/nope", token: admin, status: 404},
		{name: "services non-admin", method: "GET", path: "/identity/v3/services", token: alice, status: 403},
		{name: "region", method: "GET", path: "/identity/v3/regions/RegionOne", token: alice, status: 200, want: []string{`"id":"RegionOne"`, `"parent_region_id":null`}},
		{name: "region unknown", method: "GET", path: "/identity/v3/regions/Mars", token: alice, status: 404},

		{name: "registered show", method: "GET", path: rl + "/" + size, token: alice, status: 200,
			want: []string{`"registered_limit":{"id":"` + size + `","service_id":"` + glance + `","region_id":"RegionOne","resource_name":"image_size_total","default_limit":1000,"description":"MiB","links":{"self":"`}},
		{name: "registered list filtered", method: "GET", path: rl + "?resource_name=image_size_total", token: alice, status: 200, want: []string{size}},
		{name: "registered list other resource", method: "GET", path: rl + "?resource_name=nope", token: admin, status: 200, want: []string{`"registered_limits":[]`}},
		{name: "registered create non-admin", method: "POST", path: rl, token: alice, status: 403,
			body: `{"registered_limits":[{"service_id":"` + glance + `","resource_name":"image_count_total","default_limit":1}]}`},
		{name: "registered create duplicate", method: "POST", path: rl, token: admin, status: 409,
			body: `{"registered_limits":[{"service_id":"` + glance + `","region_id":"RegionOne","resource_name":"image_size_total","default_limit":1}]}`},
		{name: "registered create unknown service", method: "POST", path: rl, token: admin, status: 400,
			body: `{"registered_limits":[{"service_id":"nope","resource_name":"x","default_limit":1}]}`},
		{name: "registered create unknown region", method: "POST", path: rl, token: admin, status: 400,
			body: `{"registered_limits":[{"service_id":"` + glance + `","region_id":"Mars","resource_name":"x","default_limit":1}]}`},
		{name: "registered create missing limit", method: "POST", path: rl, token: admin, status: 400,
			body: `{"registered_limits":[{"service_id":"` + glance + `","resource_name":"x"}]}`},
		{name: "registered create empty", method: "POST", path: rl, token: admin, status: 400, body: `{"registered_limits":[]}`},
		{name: "registered create malformed", method: "POST", path: rl, token: admin, status: 400, body: `{"registered_limits":`},
		{name: "registered create wrong type", method: "POST", path: rl, token: admin, status: 400,
			body: `{"registered_limits":[{"service_id":"` + glance + `","resource_name":"x","default_limit":"ten"}]}`},
		{name: "registered create below -1", method: "POST", path: rl, token: admin, status: 400,
			body: `{"registered_limits":[{"service_id":"` + glance + `","resource_name":"x","default_limit":-5}]}`},
		{name: "nothing made by bad input", method: "GET", path: rl + "?resource_name=x", token: admin, status: 200, want: []string{`"registered_limits":[]`}},
		{name: "registered update", method: "PATCH", path: rl + "/" + size, token: admin, status: 200,
			body: `{"registered_limit":{"default_limit":2000,"description":null}}`, want: []string{`"default_limit":2000`, `"description":null`}},
		{name: "registered update non-admin", method: "PATCH", path: rl + "/" + size, token: alice, status: 403, body: `{"registered_limit":{"default_limit":1}}`},
		{name: "registered update unknown", method: "PATCH", path: rl + "/nope", token: admin, status: 404, body: `{"registered_limit":{"default_limit":1}}`},
		{name: "registered delete refined", method: "DELETE", path: rl + "/" + size, token: admin, status: 403},

		{name: "limit show by member", method: "GET", path: ls + "/" + limit, token: alice, status: 200,
			want: []string{`"limit":{"id":"` + limit + `","project_id":"` + demo.ID + `","domain_id":null,"service_id":"` + glance + `","region_id":"RegionOne","resource_name":"image_size_total","resource_limit":50`}},
		{name: "limit list by member", method: "GET", path: ls, token: alice, status: 200, want: []string{limit}},
		{name: "limit create non-admin", method: "POST", path: ls, token: alice, status: 403,
			body: `{"limits":[{"project_id":"` + other.ID + `","service_id":"` + glance + `","resource_name":"image_size_total","resource_limit":5}]}`},
		{name: "limit create without default", method: "POST", path: ls, token: admin, status: 400,
			body: `{"limits":[{"project_id":"` + other.ID + `","service_id":"` + glance + `","resource_name":"image_count_total","resource_limit":5}]}`},
		{name: "limit create unknown project", method: "POST", path: ls, token: admin, status: 400,
			body: `{"limits":[{"project_id":"nope","service_id":"` + glance + `","region_id":"RegionOne","resource_name":"image_size_total","resource_limit":5}]}`},
		{name: "limit create domain", method: "POST", path: ls, token: admin, status: 400,
			body: `{"limits":[{"domain_id":"default","service_id":"` + glance + `","resource_name":"image_size_total","resource_limit":5}]}`},
		{name: "limit create duplicate", method: "POST", path: ls, token: admin, status: 409,
			body: `{"limits":[{"project_id":"` + demo.ID + `","service_id":"` + glance + `","region_id":"RegionOne","resource_name":"image_size_total","resource_limit":5}]}`},
		{name: "limit update resource refused", method: "PATCH", path: ls + "/" + limit, token: admin, status: 400, body: `{"limit":{"resource_name":"x"}}`},
		{name: "limit update", method: "PATCH", path: ls + "/" + limit, token: admin, status: 200, body: `{"limit":{"resource_limit":60}}`, want: []string{`"resource_limit":60`}},
		{name: "limit delete non-admin", method: "DELETE", path: ls + "/" + limit, token: alice, status: 403},
		{name: "model", method: "GET", path: ls + "/model", token: alice, status: 200, want: []string{`"model":{`, `"name":"flat"`}},
		{name: "limit delete", method: "DELETE", path: ls + "/" + limit, token: admin, status: 204},
		{name: "limit gone", method: "GET", path: ls + "/" + limit, token: admin, status: 404, want: []string{"Could not find limit: " + limit}},
		{name: "registered delete", method: "DELETE", path: rl + "/" + size, token: admin, status: 204},
		{name: "registered gone", method: "GET", path: rl + "/" + size, token: admin, status: 404},
	})
	// Another project's member sees none of demo's limits.
	ta.mustCreateUser("bob", "bob-pw", other, auth.RoleMember)
	bob := ta.token("bob", "bob-pw", "other")
	created(rl, `{"registered_limits":[{"service_id":"`+glance+`","resource_name":"image_count_total","default_limit":10}]}`)
	hidden := created(ls, `{"limits":[{"project_id":"`+demo.ID+`","service_id":"`+glance+`","resource_name":"image_count_total","resource_limit":3}]}`)
	ta.run([]call{
		{name: "other member list", method: "GET", path: ls, token: bob, status: 200, want: []string{`"limits":[]`}},
		{name: "other member show", method: "GET", path: ls + "/" + hidden, token: bob, status: 403},
	})
}
