package identityapi

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
)

func TestVersionDiscovery(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	self := `"href":"` + ta.srv.URL + `/identity/v3/"`
	ta.run([]call{
		{name: "root", method: "GET", path: "/identity", status: 300, want: []string{`{"versions":{"values":[{"id":"v3.14","status":"stable"`, self, `"media-types":[{"base":"application/json","type":"application/vnd.openstack.identity-v3+json"}]`}},
		{name: "root slash", method: "GET", path: "/identity/", status: 300, want: []string{self}},
		{name: "v3", method: "GET", path: "/identity/v3", status: 200, want: []string{`{"version":{"id":"v3.14","status":"stable"`, `"rel":"self"`, self, "media-types"}},
		{name: "v3 slash", method: "GET", path: "/identity/v3/", status: 200, want: []string{self}},
		{name: "v3 HEAD", method: "HEAD", path: "/identity/v3", status: 200},
		{name: "unknown path", method: "GET", path: "/identity/v3/nothing", token: ta.adminToken, status: 404},
		{name: "wrong method", method: "PUT", path: "/identity/v3/auth/tokens", status: 405},
	})
	resp, _ := ta.do("PUT", "/identity/v3/auth/tokens", "", "")
	if got := resp.Header.Get("Allow"); got != "GET, HEAD, POST, DELETE" {
		t.Errorf("Allow %q", got)
	}
}

func TestPublicURL(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{PublicURL: "https://api.example.com/", RegistryURL: "https://registry.example.com"})
	ta.run([]call{
		{name: "discovery", method: "GET", path: "/identity/v3", status: 200, want: []string{`"href":"https://api.example.com/identity/v3/"`}},
		{name: "catalog", method: "GET", path: "/identity/v3/auth/catalog", token: ta.adminToken, status: 200, want: []string{
			`"url":"https://api.example.com"`, `"url":"https://api.example.com/identity"`, `"url":"https://registry.example.com"`}},
	})
}

// tokenBody is what the tests read of a token.
type tokenBody struct {
	Token struct {
		Methods   []string `json:"methods"`
		ExpiresAt string   `json:"expires_at"`
		IssuedAt  string   `json:"issued_at"`
		AuditIDs  []string `json:"audit_ids"`
		IsDomain  *bool    `json:"is_domain"`
		User      struct {
			ID, Name string
			Domain   struct{ ID, Name string }
		} `json:"user"`
		Project *struct {
			ID, Name string
			Domain   struct{ ID, Name string }
		} `json:"project"`
		Roles []struct {
			ID, Name string
		} `json:"roles"`
		Catalog []struct {
			Type, Name string
			Endpoints  []struct {
				Interface, Region, URL string
				RegionID               string `json:"region_id"`
			}
		} `json:"catalog"`
	} `json:"token"`
}

var keystoneTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

func TestIssueTokenBody(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{RegistryPort: "5000"})
	resp, body := ta.do("POST", "/identity/v3/auth/tokens", "", passwordAuth("admin", adminPassword, "admin"))
	if resp.StatusCode != 201 || resp.Header.Get("X-Subject-Token") == "" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, headers %v: %s", resp.StatusCode, resp.Header, body)
	}
	var tb tokenBody
	decodeJSON(t, body, &tb)
	tok := tb.Token
	if !keystoneTimeRE.MatchString(tok.ExpiresAt) || !keystoneTimeRE.MatchString(tok.IssuedAt) {
		t.Errorf("times %q %q", tok.ExpiresAt, tok.IssuedAt)
	}
	exp, _ := time.Parse(keystoneTime, tok.ExpiresAt)
	if d := time.Until(exp); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("expires in %v", d)
	}
	if len(tok.Methods) != 1 || tok.Methods[0] != "password" || len(tok.AuditIDs) != 1 || tok.IsDomain == nil || *tok.IsDomain {
		t.Errorf("methods %v audit %v is_domain %v", tok.Methods, tok.AuditIDs, tok.IsDomain)
	}
	if tok.User.ID != ta.adminID || tok.User.Name != "admin" || tok.User.Domain.ID != "default" || tok.User.Domain.Name != "Default" {
		t.Errorf("user %+v", tok.User)
	}
	if tok.Project == nil || tok.Project.ID != ta.adminProj || tok.Project.Name != "admin" || tok.Project.Domain.ID != "default" {
		t.Errorf("project %+v", tok.Project)
	}
	var roles []string
	for _, r := range tok.Roles {
		roles = append(roles, r.ID+"="+r.Name)
	}
	if got := strings.Join(roles, ","); got != "role-admin=admin,role-member=member,role-reader=reader" {
		t.Errorf("roles %s", got)
	}
	urls := map[string]string{}
	for _, s := range tok.Catalog {
		if len(s.Endpoints) != 3 {
			t.Errorf("%s endpoints %+v", s.Type, s.Endpoints)
		}
		for _, e := range s.Endpoints {
			if e.Region != "RegionOne" || e.RegionID != "RegionOne" {
				t.Errorf("%s endpoint %+v", s.Type, e)
			}
			urls[s.Type+"/"+e.Interface] = e.URL
		}
	}
	host := strings.TrimPrefix(ta.srv.URL, "http://127.0.0.1")
	want := map[string]string{
		"image/public": ta.srv.URL, "image/internal": ta.srv.URL, "image/admin": ta.srv.URL,
		"identity/public": ta.srv.URL + "/identity", "registry/public": "http://127.0.0.1:5000", "registry/admin": "http://127.0.0.1:5000",
	}
	for k, v := range want {
		if urls[k] != v {
			t.Errorf("catalog %s = %q, want %q (api %s)", k, urls[k], v, host)
		}
	}
	if strings.Contains(string(body), "password_hash") || strings.Contains(string(body), "$2a$") {
		t.Errorf("token body leaks the password hash: %s", body)
	}
}

func TestIssueToken(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	ctx := context.Background()
	demo := ta.mustCreateProject("demo")
	other := ta.mustCreateProject("other")
	alice := ta.mustCreateUser("alice", "alice-pw", demo, auth.RoleMember)
	ta.mustCreateUser("bob", "bob-pw", auth.Project{}, "") // no role anywhere
	off := ta.mustCreateProject("off")
	ta.id.Grant(ctx, alice.ID, off.ID, auth.RoleMember)
	ta.id.UpdateProject(ctx, off.ID, func(p *auth.Project) error { p.Enabled = false; return nil })
	carol := ta.mustCreateUser("carol", "carol-pw", demo, auth.RoleReader)
	ta.id.UpdateUser(ctx, carol.ID, "", func(u *auth.User) error { u.Enabled = false; return nil })

	pw := func(user, extra string) string {
		return `{"auth":{"identity":{"methods":["password"],"password":{"user":` + user + `}}` + extra + `}}`
	}
	aliceByName := `{"name":"alice","domain":{"name":"Default"},"password":"alice-pw"}`
	unauthorizedBody := `{"error":{"code":401,"title":"Unauthorized","message":"The request you have made requires authentication."}}`
	const path = "/identity/v3/auth/tokens"
	ta.run([]call{
		{name: "by name, project by name", method: "POST", path: path, body: pw(aliceByName, `,"scope":{"project":{"name":"demo","domain":{"name":"Default"}}}`), status: 201, want: []string{`"name":"demo"`, `"name":"member"`, `"catalog":[`}},
		{name: "domain by id, project by id", method: "POST", path: path, body: pw(`{"name":"alice","domain":{"id":"default"},"password":"alice-pw"}`, `,"scope":{"project":{"id":"`+demo.ID+`"}}`), status: 201, want: []string{demo.ID}},
		{name: "user by id", method: "POST", path: path, body: pw(`{"id":"`+alice.ID+`","password":"alice-pw"}`, `,"scope":{"project":{"name":"demo","domain":{"id":"default"}}}`), status: 201},
		{name: "lowercase domain name", method: "POST", path: path, body: pw(`{"name":"alice","domain":{"name":"default"},"password":"alice-pw"}`, ""), status: 201},
		{name: "no scope: default project", method: "POST", path: path, body: pw(aliceByName, ""), status: 201, want: []string{`"project":{"id":"` + demo.ID}},
		{name: "explicitly unscoped", method: "POST", path: path, body: pw(aliceByName, `,"scope":"unscoped"`), status: 201, want: []string{`"methods":["password"]`}},
		{name: "no scope, no role: unscoped", method: "POST", path: path, body: pw(`{"name":"bob","domain":{"name":"Default"},"password":"bob-pw"}`, ""), status: 201},
		{name: "nocatalog", method: "POST", path: path + "?nocatalog", body: pw(aliceByName, `,"scope":{"project":{"id":"`+demo.ID+`"}}`), status: 201, want: []string{`"roles":[`}},

		{name: "wrong password", method: "POST", path: path, body: pw(`{"name":"alice","domain":{"name":"Default"},"password":"nope"}`, ""), status: 401, want: []string{unauthorizedBody}},
		{name: "unknown user", method: "POST", path: path, body: pw(`{"name":"mallory","domain":{"name":"Default"},"password":"x"}`, ""), status: 401, want: []string{unauthorizedBody}},
		{name: "unknown user id", method: "POST", path: path, body: pw(`{"id":"0123","password":"x"}`, ""), status: 401},
		{name: "other domain", method: "POST", path: path, body: pw(`{"name":"alice","domain":{"name":"Other"},"password":"alice-pw"}`, ""), status: 401},
		{name: "disabled user", method: "POST", path: path, body: pw(`{"name":"carol","domain":{"name":"Default"},"password":"carol-pw"}`, ""), status: 401},
		{name: "project without role", method: "POST", path: path, body: pw(aliceByName, `,"scope":{"project":{"id":"`+other.ID+`"}}`), status: 401, want: []string{unauthorizedBody}},
		{name: "unknown project", method: "POST", path: path, body: pw(aliceByName, `,"scope":{"project":{"id":"nosuch"}}`), status: 401},
		{name: "unknown project name", method: "POST", path: path, body: pw(aliceByName, `,"scope":{"project":{"name":"nosuch","domain":{"name":"Default"}}}`), status: 401},
		{name: "project in other domain", method: "POST", path: path, body: pw(aliceByName, `,"scope":{"project":{"name":"demo","domain":{"id":"other"}}}`), status: 401},
		{name: "disabled project", method: "POST", path: path, body: pw(aliceByName, `,"scope":{"project":{"id":"`+off.ID+`"}}`), status: 401},
		{name: "domain scope", method: "POST", path: path, body: pw(aliceByName, `,"scope":{"domain":{"id":"default"}}`), status: 401},
		{name: "system scope", method: "POST", path: path, body: pw(aliceByName, `,"scope":{"system":{"all":true}}`), status: 401},
		{name: "unsupported method", method: "POST", path: path, body: `{"auth":{"identity":{"methods":["totp"],"totp":{}}}}`, status: 401},
		{name: "garbage token method", method: "POST", path: path, body: `{"auth":{"identity":{"methods":["token"],"token":{"id":"garbage"}}}}`, status: 401},

		{name: "malformed JSON", method: "POST", path: path, body: `{"auth":`, status: 400},
		{name: "trailing data", method: "POST", path: path, body: pw(aliceByName, "") + "{}", status: 400},
		{name: "wrong type", method: "POST", path: path, body: pw(`{"name":"alice","domain":{"name":"Default"},"password":12}`, ""), status: 400},
		{name: "no identity", method: "POST", path: path, body: `{"auth":{}}`, status: 400},
		{name: "no methods", method: "POST", path: path, body: `{"auth":{"identity":{"methods":[]}}}`, status: 400},
		{name: "password section missing", method: "POST", path: path, body: `{"auth":{"identity":{"methods":["password"]}}}`, status: 400},
		{name: "name without domain", method: "POST", path: path, body: pw(`{"name":"alice","password":"alice-pw"}`, ""), status: 400},
		{name: "project name without domain", method: "POST", path: path, body: pw(aliceByName, `,"scope":{"project":{"name":"demo"}}`), status: 400},
		{name: "bad scope string", method: "POST", path: path, body: pw(aliceByName, `,"scope":"everything"`), status: 400},
		{name: "oversized body", method: "POST", path: path, body: `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"` + strings.Repeat("a", 2<<20) + `"}}}}}`, status: 413},
	})
}

func TestTokenMethodRescopes(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	demo := ta.mustCreateProject("demo")
	ta.mustCreateUser("alice", "alice-pw", demo, auth.RoleMember)
	resp, _ := ta.do("POST", "/identity/v3/auth/tokens", "", passwordAuth("alice", "alice-pw", ""))
	unscoped := resp.Header.Get("X-Subject-Token")
	var first tokenBody
	_, b := ta.do("GET", "/identity/v3/auth/tokens", unscoped, "", "X-Subject-Token", unscoped)
	decodeJSON(t, b, &first)

	resp, b = ta.do("POST", "/identity/v3/auth/tokens", "", `{"auth":{"identity":{"methods":["token"],"token":{"id":"`+unscoped+`"}},"scope":{"project":{"id":"`+demo.ID+`"}}}}`)
	if resp.StatusCode != 201 {
		t.Fatalf("rescope: %d %s", resp.StatusCode, b)
	}
	var tb tokenBody
	decodeJSON(t, b, &tb)
	if tb.Token.Project == nil || tb.Token.Project.ID != demo.ID || tb.Token.ExpiresAt != first.Token.ExpiresAt {
		t.Errorf("rescoped token: %s (first expires %s)", b, first.Token.ExpiresAt)
	}
	if strings.Join(tb.Token.Methods, ",") != "password,token" {
		t.Errorf("methods %v", tb.Token.Methods)
	}
}

func TestValidateAndRevokeTokens(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	demo := ta.mustCreateProject("demo")
	ta.mustCreateUser("alice", "alice-pw", demo, auth.RoleMember)
	ta.mustCreateUser("bob", "bob-pw", demo, auth.RoleMember)
	alice := ta.token("alice", "alice-pw", "demo")
	alice2 := ta.token("alice", "alice-pw", "demo")
	bob := ta.token("bob", "bob-pw", "demo")
	toRevoke := ta.token("bob", "bob-pw", "demo")
	const path = "/identity/v3/auth/tokens"
	sub := func(tok string) []string { return []string{"X-Subject-Token", tok} }
	ta.run([]call{
		{name: "admin validates", method: "GET", path: path, token: ta.adminToken, header: sub(alice), status: 200, want: []string{`"name":"alice"`, `"catalog":[`}},
		{name: "admin validates nocatalog", method: "GET", path: path + "?nocatalog", token: ta.adminToken, header: sub(alice), status: 200, want: []string{`"name":"alice"`}},
		{name: "own token", method: "GET", path: path, token: alice, header: sub(alice2), status: 200},
		{name: "HEAD own token", method: "HEAD", path: path, token: alice, header: sub(alice), status: 200},
		{name: "other's token", method: "GET", path: path, token: alice, header: sub(bob), status: 403},
		{name: "garbage subject", method: "GET", path: path, token: ta.adminToken, header: sub("garbage"), status: 404},
		{name: "HEAD garbage subject", method: "HEAD", path: path, token: ta.adminToken, header: sub("garbage"), status: 404},
		{name: "no subject", method: "GET", path: path, token: ta.adminToken, status: 404},
		{name: "garbage caller", method: "GET", path: path, token: "garbage", header: sub(alice), status: 401},
		{name: "no caller", method: "GET", path: path, header: sub(alice), status: 401},
		{name: "huge caller", method: "GET", path: path, token: strings.Repeat("x", 5000), header: sub(alice), status: 401},
		{name: "revoke other's token refused", method: "DELETE", path: path, token: alice, header: sub(bob), status: 403},
		{name: "revoke own", method: "DELETE", path: path, token: alice, header: sub(alice2), status: 204},
		{name: "revoked is gone", method: "GET", path: path, token: ta.adminToken, header: sub(alice2), status: 404},
		{name: "revoked cannot call", method: "GET", path: "/identity/v3/auth/projects", token: alice2, status: 401},
		{name: "revoke again", method: "DELETE", path: path, token: alice, header: sub(alice2), status: 404},
		{name: "admin revokes", method: "DELETE", path: path, token: ta.adminToken, header: sub(toRevoke), status: 204},
		{name: "revoked cannot rescope", method: "POST", path: path, body: `{"auth":{"identity":{"methods":["token"],"token":{"id":"` + toRevoke + `"}}}}`, status: 401},
	})
	ta.advance(2 * time.Hour)
	ta.run([]call{
		{name: "expired caller", method: "GET", path: path, token: alice, header: sub(alice), status: 401},
		{name: "expired cannot rescope", method: "POST", path: path, body: `{"auth":{"identity":{"methods":["token"],"token":{"id":"` + alice + `"}}}}`, status: 401},
		{name: "expired on any route", method: "GET", path: "/identity/v3/projects", token: ta.adminToken, status: 401},
	})
}

func TestAuthCatalogAndProjects(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, Options{})
	demo := ta.mustCreateProject("demo")
	ta.mustCreateProject("other")
	alice := ta.mustCreateUser("alice", "alice-pw", demo, auth.RoleReader)
	off := ta.mustCreateProject("off")
	ctx := context.Background()
	ta.id.Grant(ctx, alice.ID, off.ID, auth.RoleMember)
	ta.id.UpdateProject(ctx, off.ID, func(p *auth.Project) error { p.Enabled = false; return nil })
	scoped := ta.token("alice", "alice-pw", "demo")
	resp, _ := ta.do("POST", "/identity/v3/auth/tokens", "", `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"alice","domain":{"name":"Default"},"password":"alice-pw"}}},"scope":"unscoped"}}`)
	unscoped := resp.Header.Get("X-Subject-Token")
	ta.run([]call{
		{name: "catalog", method: "GET", path: "/identity/v3/auth/catalog", token: scoped, status: 200, want: []string{`"catalog":[`, `"type":"image"`, `"type":"identity"`, `"links":{"self":`}},
		{name: "catalog unscoped", method: "GET", path: "/identity/v3/auth/catalog", token: unscoped, status: 403},
		{name: "catalog anonymous", method: "GET", path: "/identity/v3/auth/catalog", status: 401},
		{name: "projects", method: "GET", path: "/identity/v3/auth/projects", token: unscoped, status: 200, want: []string{`"name":"demo"`}},
		{name: "domains", method: "GET", path: "/identity/v3/auth/domains", token: unscoped, status: 200, want: []string{`"domains":[]`}},
	})
	_, b := ta.do("GET", "/identity/v3/auth/projects", scoped, "")
	if strings.Contains(string(b), `"other"`) || strings.Contains(string(b), `"off"`) {
		t.Errorf("auth/projects lists projects alice cannot scope to: %s", b)
	}
	// The catalog has no registry when neither its URL nor its port is known.
	_, b = ta.do("GET", "/identity/v3/auth/catalog", scoped, "")
	if strings.Contains(string(b), "registry") {
		t.Errorf("catalog: %s", b)
	}
	var tb struct{ Catalog []any }
	decodeJSON(t, b, &tb)
	if len(tb.Catalog) != 2 {
		t.Errorf("catalog: %s", b)
	}
}
