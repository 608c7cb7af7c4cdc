package conformance

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/internal/testenv"
)

// adminPassword is the bootstrap admin's password on servers with authentication on.
const adminPassword = "xloud-admin-secret"

// authArgs are the flags of a server with the embedded identity on, then extra.
func authArgs(extra ...string) []string {
	return append([]string{"--auth", "embedded", "--admin-password", adminPassword}, extra...)
}

// account is a user name and password a client logs in with.
type account struct{ User, Password string }

// creds is the user:password form of --creds, --user and curl -u.
func (a account) creds() string { return a.User + ":" + a.Password }

// credentialEnv keeps the logins a client stores in a fresh directory of the test, so tests
// share none: oras, crane and cosign keep them in $DOCKER_CONFIG/config.json, skopeo in
// $REGISTRY_AUTH_FILE (and would look under $XDG_RUNTIME_DIR).
func credentialEnv(t *testing.T) []string {
	dir := t.TempDir()
	return []string{"DOCKER_CONFIG=" + dir, "REGISTRY_AUTH_FILE=" + filepath.Join(dir, "auth.json"), "XDG_RUNTIME_DIR=" + dir}
}

// authWorld is a server with authentication on and the accounts the client tests log in as.
// Passwords hold a colon and URL-special characters: clients split user:password at the
// first colon only.
type authWorld struct {
	srv      *testenv.Server
	member   account // member of project "team"
	reader   account // reader of project "team"
	outsider account // member of project "other"
}

// startAuthWorld starts a server on backend with authentication on, with the projects "team"
// and "other" and their users.
func startAuthWorld(t *testing.T, backend string, args ...string) authWorld {
	t.Helper()
	w := authWorld{
		member:   account{"alice", "alice:pw/1#%?"},
		reader:   account{"bob", "bob:pw@2 &"},
		outsider: account{"eve", "eve:pw;3"},
	}
	w.srv = startAuthServer(t, backend, []roleGrant{
		{"team", w.member, "member"}, {"team", w.reader, "reader"}, {"other", w.outsider, "member"},
	}, args...)
	return w
}

// roleGrant is a user to create with a role on a project.
type roleGrant struct {
	Project string
	Account account
	Role    string // admin, member or reader
}

// startAuthServer starts a server on backend with authentication on (then args) and creates,
// through the Identity API as the admin, the projects and users of grants.
func startAuthServer(t *testing.T, backend string, grants []roleGrant, args ...string) *testenv.Server {
	t.Helper()
	srv := startBackend(t, backend, authArgs(args...)...)
	id := testenv.AdminIdentity(t, srv.APIURL(false), nil, adminPassword)
	projects := map[string]string{}
	for _, g := range grants {
		if projects[g.Project] == "" {
			projects[g.Project] = id.Project(t, g.Project)
		}
		id.User(t, projects[g.Project], g.Account.User, g.Account.Password, g.Role)
	}
	return srv
}

// eachAuthBackend runs f in parallel subtests, one per metadata backend, each with its own
// authWorld.
func eachAuthBackend(t *testing.T, f func(t *testing.T, w authWorld)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			f(t, startAuthWorld(t, b))
		})
	}
}

// base is the Registry API base URL carrying a's credentials, which net/http sends as HTTP
// Basic on every request (and on the relative upload locations the server answers).
func (w authWorld) base(a account) string {
	return "http://" + url.UserPassword(a.User, a.Password).String() + "@" + w.srv.RegistryAddr
}

// mountWithoutSource: with tokens, a mount that names no source repository searches only the
// repositories the token covers (a token for one repository must not reach blobs of another,
// whatever its user may read), and the suite's token covers only the target: the server
// answers 202 as for a missing blob, which the suite counts as a skip. A mount naming its
// source gets a challenge for a token covering both, and passes.
var mountWithoutSource = map[string]string{
	"OCI Conformance Test/sha256 blobs/mount anonymous/blob-mount-anonymous": "a token bounds the search of a mount without from",
	"OCI Conformance Test/sha512 blobs/mount anonymous/blob-mount-anonymous": "a token bounds the search of a mount without from",
}

// TestOCIConformanceWithAuth runs the conformance suite with authentication on, logged in as a
// member of the project "conformance" which owns the repositories it uses, on each metadata
// backend; as without authentication, every test must pass.
func TestOCIConformanceWithAuth(t *testing.T) {
	t.Parallel()
	bin := testenv.RequireTool(t, "oci-conformance")
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			conf := account{"conf", "conf-pw:" + b}
			srv := startAuthServer(t, b, []roleGrant{{"conformance", conf, "member"}}, "--sparse-manifests")
			// The suite would pass against an open registry too: make sure this one is not.
			requireChallenge(t, srv, "/v2/conformance/repo1/tags/list", "repository:conformance/repo1:pull")
			runConformance(t, bin, srv.RegistryAddr, mountWithoutSource, "OCI_USERNAME="+conf.User, "OCI_PASSWORD="+conf.Password)
		})
	}
}

// requireChallenge checks that GET path without credentials answers 401 with the Bearer
// challenge naming this server's token endpoint and scope (none for empty scope), and no
// error: the request carried no credentials to be in error (RFC 6750, section 3.1).
func requireChallenge(t *testing.T, srv *testenv.Server, path, scope string) {
	t.Helper()
	resp := do(t, "GET", srv.URL()+path, "", nil)
	want := `Bearer realm="` + srv.URL() + `/token",service="xloud-image"`
	if scope != "" {
		want += `,scope="` + scope + `"`
	}
	if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || got != want {
		t.Errorf("GET %s without credentials: %s, WWW-Authenticate %q; want 401 with %q", path, resp.Status, got, want)
	}
}

// TestAnonymousRefused: without --anonymous-pull, a caller without credentials gets the
// challenge, an anonymous token grants nothing, and every client's anonymous pull fails.
func TestAnonymousRefused(t *testing.T) {
	t.Parallel()
	oras := tool{Path: testenv.RequireTool(t, "oras"), Env: credentialEnv(t)}
	crane := tool{Path: testenv.RequireTool(t, "crane"), Env: credentialEnv(t)}
	skopeo := tool{Path: testenv.RequireTool(t, "skopeo"), Env: append(credentialEnv(t), "TMPDIR="+t.TempDir())}
	eachAuthBackend(t, func(t *testing.T, w authWorld) {
		img, _ := smallImage(t, 4<<10)
		d := img.push(t, w.base(w.member), "team/private", "v1")
		ref := w.srv.RegistryAddr + "/team/private:v1"

		requireChallenge(t, w.srv, "/v2/", "")
		requireChallenge(t, w.srv, "/v2/team/private/manifests/v1", "repository:team/private:pull")
		requireChallenge(t, w.srv, "/v2/team/private/blobs/"+d.String(), "repository:team/private:pull")
		requireChallenge(t, w.srv, "/v2/team/private/tags/list", "repository:team/private:pull")
		requireChallenge(t, w.srv, "/v2/_catalog", "registry:catalog:*")

		// The token endpoint serves anonymous callers, granting them nothing here.
		tok := registryToken(t, w.srv.URL()+"/token?service=xloud-image&scope=repository:team/private:pull")
		if len(tok.claims.Access) != 0 || tok.claims.Subject != "" {
			t.Errorf("anonymous token: subject %q, access %+v; want none", tok.claims.Subject, tok.claims.Access)
		}
		req, _ := http.NewRequest("GET", w.srv.URL()+"/v2/team/private/manifests/v1", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		if resp, _ := roundTrip(t, req); resp.StatusCode != http.StatusUnauthorized ||
			!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Errorf("GET manifest with the anonymous token: %s %q, want 401 insufficient_scope", resp.Status, resp.Header.Get("WWW-Authenticate"))
		}

		requireUnauthorized(t, oras.mustFail(t, "pull", "--plain-http", "--no-tty", "-o", t.TempDir(), ref))
		requireUnauthorized(t, crane.mustFail(t, "manifest", "--insecure", ref))
		requireUnauthorized(t, skopeo.mustFail(t, "inspect", "--tls-verify=false", "docker://"+ref))
	})
}

// requireUnauthorized checks that a client failed because the registry refused its
// credentials (or their absence), not for another reason.
func requireUnauthorized(t *testing.T, out string) {
	t.Helper()
	l := strings.ToLower(out)
	for _, s := range []string{"401", "unauthorized", "authentication required", "denied", "403", "forbidden"} {
		if strings.Contains(l, s) {
			return
		}
	}
	t.Errorf("client failed for another reason than authorization:\n%s", tail(out, 10))
}

// tokenAnswer is the token endpoint's JSON with the token's claims decoded.
type tokenAnswer struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
	claims      struct {
		Subject string `json:"sub"`
		Access  []struct {
			Type, Name string
			Actions    []string
		} `json:"access"`
	}
}

// registryToken GETs a token from u (which may carry credentials) and decodes its claims.
func registryToken(t *testing.T, u string) tokenAnswer {
	t.Helper()
	resp := do(t, "GET", u, "", nil)
	var a tokenAnswer
	if resp.StatusCode != http.StatusOK || json.Unmarshal(resp.body, &a) != nil || a.Token == "" || a.AccessToken != a.Token || a.ExpiresIn <= 0 || a.IssuedAt == "" {
		t.Fatalf("GET %s: %s %s; want 200 with token, access_token, expires_in, issued_at", u, resp.Status, resp.body)
	}
	parts := strings.Split(a.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", a.Token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &a.claims) != nil {
		t.Fatalf("token claims %q: %v", parts[1], err)
	}
	return a
}
