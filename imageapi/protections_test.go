package imageapi_test

import (
	"strings"
	"testing"

	"github.com/xloud/xloud-image/auth"
)

// TestPropertyProtections: with Glance's roles-format protections, a member creates, reads,
// changes and removes x_ properties but no others, a reader sees only what it may read, and
// every refusal is 403 with nothing changed.
func TestPropertyProtections(t *testing.T) {
	t.Parallel()
	prot, err := auth.ParsePropertyProtections(strings.NewReader(`
[^x_.*]
create = admin,member
read = admin,member,reader
update = admin,member
delete = admin,member

[^secret_.*]
create = admin
read = admin
update = admin
delete = admin

[.*]
create = admin
read = @
update = admin
delete = admin
`))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(p *auth.Policy) { p.Protections = prot })

	if r := e.do("member-a", "POST", "/v2/images", map[string]any{"name": "p", "hw_cpu_cores": "2"}); r.status != 403 || !strings.Contains(string(r.body), "hw_cpu_cores") {
		t.Fatalf("member creates a property only admins may: %d %s", r.status, r.body)
	}
	id := e.create("member-a", map[string]any{"name": "p", "x_build": "42", "visibility": "shared"})
	if r := e.do("admin", "PATCH", "/v2/images/"+id, `[{"op":"add","path":"/secret_key","value":"s"},{"op":"add","path":"/hw_cpu_cores","value":"2"}]`,
		"Content-Type", "application/openstack-images-v2.1-json-patch"); r.status != 200 {
		t.Fatalf("admin adds protected properties: %d %s", r.status, r.body)
	}

	// Read: the member sees x_build and hw_cpu_cores (read @), not secret_key; so does a
	// reader; the admin sees everything.
	for who, want := range map[string][]string{
		"member-a": {"x_build", "hw_cpu_cores"},
		"reader-a": {"x_build", "hw_cpu_cores"},
		"admin":    {"x_build", "hw_cpu_cores", "secret_key"},
	} {
		img := e.do(who, "GET", "/v2/images/"+id, nil).json(t)
		for _, k := range want {
			if _, ok := img[k]; !ok {
				t.Errorf("%s does not see %s: %v", who, k, img)
			}
		}
		if _, ok := img["secret_key"]; ok != (who == "admin") {
			t.Errorf("%s sees secret_key: %v", who, ok)
		}
		list := e.do(who, "GET", "/v2/images", nil)
		if strings.Contains(string(list.body), "secret_key") != (who == "admin") {
			t.Errorf("%s's list and secret_key: %s", who, list.body)
		}
	}
	if r := e.do("member-a", "GET", "/v2/images?secret_key=s", nil); strings.Contains(string(r.body), id) {
		t.Errorf("a filter on an unreadable property finds the image: %s", r.body)
	}
	if r := e.do("admin", "GET", "/v2/images?secret_key=s", nil); !strings.Contains(string(r.body), id) {
		t.Errorf("the admin's filter does not find the image: %s", r.body)
	}

	patch := func(who, ops string) resp {
		return e.do(who, "PATCH", "/v2/images/"+id, ops, "Content-Type", "application/openstack-images-v2.1-json-patch")
	}
	for _, c := range []struct {
		who, ops string
		want     int
	}{
		{"member-a", `[{"op":"replace","path":"/x_build","value":"43"}]`, 200},
		{"member-a", `[{"op":"add","path":"/x_new","value":"1"}]`, 200},
		{"member-a", `[{"op":"remove","path":"/x_new"}]`, 200},
		{"member-a", `[{"op":"replace","path":"/hw_cpu_cores","value":"4"}]`, 403}, // read, not update
		{"member-a", `[{"op":"remove","path":"/hw_cpu_cores"}]`, 403},
		{"member-a", `[{"op":"remove","path":"/secret_key"}]`, 403}, // unreadable: cannot be removed
		{"member-a", `[{"op":"add","path":"/secret_key","value":"mine"}]`, 403},
		// One refused change in a patch changes nothing of the others.
		{"member-a", `[{"op":"replace","path":"/x_build","value":"99"},{"op":"add","path":"/hw_x","value":"1"}]`, 403},
	} {
		if r := patch(c.who, c.ops); r.status != c.want {
			t.Errorf("%s %s: %d, want %d: %s", c.who, c.ops, r.status, c.want, r.body)
		}
	}
	img := e.show(id)
	if img["x_build"] != "43" || img["hw_cpu_cores"] != "2" || img["secret_key"] != "s" || img["hw_x"] != nil || img["x_new"] != nil {
		t.Errorf("after the patches: %v", img)
	}
}
