package auth

import (
	"context"
	"testing"
)

// TestExplain: the reason a refused caller is given names what AllowRepository wanted: the
// role and the project, the token's missing grant, or the missing project; and only an admin
// (not through a registry token) reads protected metrics.
func TestExplain(t *testing.T) {
	w := newPolicyWorld(t)
	p := &Policy{Directory: w.id} // no content: only the roles decide
	ctx := context.Background()
	cases := []struct {
		caller, repo string
		act          Action
		want         string
	}{
		{"reader", "a/x", ActionPush, "push on a/x needs the member role (or manager, admin) on project a"},
		{"other project", "a/x", ActionPull, "pull on a/x needs the reader role (or member, manager, admin) on project a, or an image there you may see"},
		{"token for b/x", "b/y", ActionPull, "the registry token does not grant pull on b/y"},
		{"member", "nowhere/x", ActionPush, `push on nowhere/x needs a project named "nowhere" (the repository's first component), and there is none`},
	}
	for _, c := range cases {
		pr := w.principl[c.caller]
		if ok, err := p.AllowRepository(ctx, pr, c.repo, c.act); ok || err != nil {
			t.Fatalf("%s %s %s: allowed %v %v; the case needs a refusal", c.caller, c.act, c.repo, ok, err)
		}
		if got := p.Explain(ctx, pr, c.repo, c.act); got != c.want {
			t.Errorf("%s %s %s: %q, want %q", c.caller, c.act, c.repo, got, c.want)
		}
	}
	for name, want := range map[string]bool{"admin": true, "member": false, "anonymous": false} {
		if got := p.AllowMetrics(w.principl[name]); got != want {
			t.Errorf("AllowMetrics(%s) = %v", name, got)
		}
	}
	if p.AllowMetrics(Principal{Admin: true, Bounded: true}) {
		t.Error("an admin's registry token reads metrics")
	}
}
