package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
)

// IdentityClient speaks the Keystone v3 subset a live server serves at /identity/v3 on its
// API port, as an administrator: enough to create the projects, users and role grants a
// test needs, since a test cannot reach the server's metadata store.
type IdentityClient struct {
	// Base is the API port's base URL, e.g. http://127.0.0.1:9292.
	Base string
	// HTTP sends the requests; nil means http.DefaultClient (use one trusting the server's CA
	// for a TLS server).
	HTTP *http.Client
	// Token is the admin's X-Auth-Token.
	Token string
}

// AdminIdentity logs in as the bootstrap admin (user and project "admin" in the Default
// domain) with password and returns a client holding the project-scoped token.
func AdminIdentity(t testing.TB, base string, client *http.Client, password string) *IdentityClient {
	t.Helper()
	c := &IdentityClient{Base: base, HTTP: client}
	tok, err := c.Login("admin", password, "admin")
	if err != nil {
		t.Fatalf("identity: admin login: %v", err)
	}
	c.Token = tok
	return c
}

// Login asks for a token for user, scoped to project (by name, Default domain) when project is
// not empty, and returns the X-Subject-Token.
func (c *IdentityClient) Login(user, password, project string) (string, error) {
	req := map[string]any{"identity": map[string]any{
		"methods": []string{"password"},
		"password": map[string]any{"user": map[string]any{
			"name": user, "password": password, "domain": map[string]string{"id": "default"}}},
	}}
	if project != "" {
		req["scope"] = map[string]any{"project": map[string]any{
			"name": project, "domain": map[string]string{"id": "default"}}}
	}
	resp, _, err := c.call("POST", "/auth/tokens", map[string]any{"auth": req}, nil, http.StatusCreated)
	if err != nil {
		return "", err
	}
	tok := resp.Header.Get("X-Subject-Token")
	if tok == "" {
		return "", fmt.Errorf("POST /identity/v3/auth/tokens: 201 without X-Subject-Token")
	}
	return tok, nil
}

// CreateProject creates a project in the Default domain and returns its id.
func (c *IdentityClient) CreateProject(name string) (string, error) {
	var out struct {
		Project struct{ ID string } `json:"project"`
	}
	body := map[string]any{"project": map[string]any{"name": name, "domain_id": "default", "enabled": true}}
	if _, _, err := c.call("POST", "/projects", body, &out, http.StatusCreated); err != nil {
		return "", err
	}
	return out.Project.ID, nil
}

// CreateUser creates a user in the Default domain and returns its id.
func (c *IdentityClient) CreateUser(name, password string) (string, error) {
	var out struct {
		User struct{ ID string } `json:"user"`
	}
	body := map[string]any{"user": map[string]any{"name": name, "password": password, "domain_id": "default", "enabled": true}}
	if _, _, err := c.call("POST", "/users", body, &out, http.StatusCreated); err != nil {
		return "", err
	}
	return out.User.ID, nil
}

// Grant gives user the role ("admin", "member" or "reader") on project (ids).
func (c *IdentityClient) Grant(projectID, userID, role string) error {
	p := "/projects/" + url.PathEscape(projectID) + "/users/" + url.PathEscape(userID) + "/roles/role-" + role
	_, _, err := c.call("PUT", p, nil, nil, http.StatusNoContent)
	return err
}

// GrantSystem gives user the role on the system (Keystone's system scope).
func (c *IdentityClient) GrantSystem(userID, role string) error {
	_, _, err := c.call("PUT", "/system/users/"+url.PathEscape(userID)+"/roles/role-"+role, nil, nil, http.StatusNoContent)
	return err
}

// RegisterLimits registers default limits of the named service in region (as devstack
// registers glance's when unified limits are on): resource name → default limit.
func (c *IdentityClient) RegisterLimits(service, region string, limits map[string]int) error {
	var svcs struct {
		Services []struct{ ID, Name string } `json:"services"`
	}
	if _, _, err := c.call("GET", "/services?name="+url.QueryEscape(service), nil, &svcs, http.StatusOK); err != nil {
		return err
	}
	if len(svcs.Services) == 0 {
		return fmt.Errorf("identity: no service named %s", service)
	}
	var regs []map[string]any
	for name, n := range limits {
		regs = append(regs, map[string]any{"service_id": svcs.Services[0].ID, "region_id": region, "resource_name": name, "default_limit": n})
	}
	_, _, err := c.call("POST", "/registered_limits", map[string]any{"registered_limits": regs}, nil, http.StatusCreated)
	return err
}

// Project creates a project and returns its id, failing the test on error.
func (c *IdentityClient) Project(t testing.TB, name string) string {
	t.Helper()
	id, err := c.CreateProject(name)
	if err != nil {
		t.Fatalf("identity: create project %s: %v", name, err)
	}
	return id
}

// User creates a user holding role on the project with id projectID and returns the user's
// id, failing the test on error.
func (c *IdentityClient) User(t testing.TB, projectID, name, password, role string) string {
	t.Helper()
	id, err := c.CreateUser(name, password)
	if err != nil {
		t.Fatalf("identity: create user %s: %v", name, err)
	}
	if err := c.Grant(projectID, id, role); err != nil {
		t.Fatalf("identity: grant %s to %s: %v", role, name, err)
	}
	return id
}

// call sends one JSON request under /identity/v3 and decodes the answer into out (when not
// nil); an answer other than want is an error naming the request and the response.
func (c *IdentityClient) call(method, path string, in, out any, want int) (*http.Response, []byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, nil, err
		}
		body = bytes.NewReader(b)
	}
	u := c.Base + "/identity/v3" + path
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("X-Auth-Token", c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp, nil, err
	}
	if resp.StatusCode != want {
		return resp, b, fmt.Errorf("%s %s: %s, want %d: %s", method, u, resp.Status, want, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp, b, fmt.Errorf("%s %s: decode: %v: %s", method, u, err, b)
		}
	}
	return resp, b, nil
}
