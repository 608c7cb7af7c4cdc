package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestKeystoneSignIn signs in to the dashboard of a server with --auth keystone against a
// real Keystone: the token comes from Keystone, the project switcher lists the user's
// projects there, refusals are alike, and sign-out revokes the token at Keystone (a refused
// revocation would fail the sign-out).
func TestKeystoneSignIn(t *testing.T) {
	ks := testenv.StartKeystone(t)
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{
		"--auth", "keystone", "--keystone-url", ks.URL, "--keystone-user", ks.ServiceUser,
		"--keystone-password", ks.ServicePassword, "--keystone-project", ks.ServiceProject,
		"--keystone-cache-ttl", "2s",
	}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.Log())
		}
	})
	base := "http://" + srv.APIAddr
	for _, u := range []struct{ user, pw string }{{testenv.KeystoneMember, "wrong"}, {"nobody", ks.Password}} {
		c := newClient(t)
		_, page := get(t, c, base+"/dashboard/login")
		st, page := post(t, c, base+"/dashboard/login", url.Values{"csrf": {csrfRE.FindStringSubmatch(page)[1]},
			"username": {u.user}, "password": {u.pw}, "project": {testenv.KeystoneProject}})
		if st != http.StatusUnauthorized || !strings.Contains(page, "The user name, password or project is not right.") {
			t.Fatalf("sign in %s/%s: %d", u.user, u.pw, st)
		}
	}
	c := signInHTTP(t, base, "member", testenv.KeystoneMember, ks.Password, testenv.KeystoneProject)
	st, page := get(t, c.client, base+"/dashboard/images")
	if st != http.StatusOK || !strings.Contains(page, testenv.KeystoneMember+" @ "+testenv.KeystoneProject) {
		t.Fatalf("images page: %d", st)
	}
	if !strings.Contains(page, `<option value="`+ks.Projects[testenv.KeystoneProject]+`" selected>`) {
		t.Fatalf("the project switcher does not list the user's project:\n%s", page)
	}
	if st, _ := post(t, c.client, base+"/dashboard/project", url.Values{"csrf": {c.csrf}, "project": {testenv.KeystoneOtherProject}}); st != http.StatusBadRequest {
		t.Fatalf("switch to a project without a role: %d", st)
	}
	if st, _ := post(t, c.client, base+"/dashboard/project", url.Values{"csrf": {c.csrf}, "project": {testenv.KeystoneProject}}); st != http.StatusSeeOther {
		t.Fatalf("switch to the user's project: %d", st)
	}
	if st, _ := post(t, c.client, base+"/dashboard/logout", url.Values{"csrf": {c.csrf}}); st != http.StatusSeeOther {
		t.Fatalf("sign out: %d", st)
	}
	if st, _ := get(t, c.client, base+"/dashboard/images"); st != http.StatusSeeOther {
		t.Fatalf("after sign-out: %d", st)
	}
}
