package auth

import (
	"context"
	"testing"
)

// TestMetadefPolicyMatrix asserts Glance's metadef defaults for every caller kind: reads
// for admins and for readers of the owning project (or of any project when the namespace is
// public or has no owner); writes for admins only; an invisible namespace is refused to
// every action. Cells: v = visible, r = may read, w = may write (- for no).
func TestMetadefPolicyMatrix(t *testing.T) {
	p := &Policy{} // scoped principals carry their roles: no directory is asked
	scoped := func(project string, roles ...Role) Principal {
		return Principal{UserID: "u-" + project, Scoped: true, ProjectID: project, ScopedRoles: roles}
	}
	callers := []struct {
		name string
		pr   Principal
	}{
		{"anonymous", Anonymous},
		{"reader of a", scoped("a", RoleReader)},
		{"member of a", scoped("a", RoleMember)},
		{"manager of a", scoped("a", RoleManager)},
		{"member of b", scoped("b", RoleMember)},
		{"no role on c", scoped("c")},
		{"registry token", Principal{UserID: "u", Bounded: true, Scoped: true, ProjectID: "a", ScopedRoles: []Role{RoleMember}}},
		{"admin", Principal{UserID: "admin", Admin: true}},
	}
	namespaces := []struct {
		name  string
		facts MetadefFacts
		want  []string // per caller, in order
	}{
		{"public of a", MetadefFacts{Owner: "a", Visibility: "public"},
			[]string{"---", "vr-", "vr-", "vr-", "vr-", "v--", "---", "vrw"}},
		{"private of a", MetadefFacts{Owner: "a", Visibility: "private"},
			[]string{"---", "vr-", "vr-", "vr-", "---", "---", "---", "vrw"}},
		{"private without owner", MetadefFacts{Visibility: "private"},
			[]string{"---", "vr-", "vr-", "vr-", "vr-", "v--", "---", "vrw"}},
	}
	ctx := context.Background()
	for _, ns := range namespaces {
		for i, c := range callers {
			got := ""
			for _, q := range []func() (bool, error){
				func() (bool, error) { return p.MetadefVisible(c.pr, ns.facts), nil },
				func() (bool, error) { return p.AllowMetadef(ctx, c.pr, &ns.facts, MetadefGetNamespace) },
				func() (bool, error) { return p.AllowMetadef(ctx, c.pr, &ns.facts, MetadefModifyNamespace) },
			} {
				ok, err := q()
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					got += "x"
				} else {
					got += "-"
				}
			}
			want := ns.want[i]
			for j, ch := range []byte("vrw") { // compare as letters
				if want[j] == ch {
					want = want[:j] + "x" + want[j+1:]
				}
			}
			if got != want {
				t.Errorf("%s, %s: %s, want %s", ns.name, c.name, got, ns.want[i])
			}
		}
	}
	// Actions on no namespace: listing and resource types need a reader role; creating one
	// is an admin's.
	for _, c := range callers {
		list, _ := p.AllowMetadef(ctx, c.pr, nil, MetadefListNamespaces)
		create, _ := p.AllowMetadef(ctx, c.pr, nil, MetadefAddNamespace)
		wantList := c.name != "anonymous" && c.name != "no role on c" && c.name != "registry token"
		if list != wantList || create != (c.name == "admin") {
			t.Errorf("%s: list %v create %v", c.name, list, create)
		}
	}
}
