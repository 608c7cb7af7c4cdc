package identityapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// openstackCLI runs the Debian `openstack` CLI as a user of one server.
type openstackCLI struct {
	t   *testing.T
	bin string
	env []string
}

func newOpenstackCLI(t *testing.T, srv *testenv.Server, user, password, project string) *openstackCLI {
	bin := testenv.RequireTool(t, "openstack")
	env := []string{"HOME=" + t.TempDir()} // no clouds.yaml of the machine
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OS_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"OS_AUTH_URL=http://"+srv.APIAddr+"/identity/v3",
		"OS_USERNAME="+user, "OS_PASSWORD="+password, "OS_PROJECT_NAME="+project,
		"OS_USER_DOMAIN_NAME=Default", "OS_PROJECT_DOMAIN_NAME=Default",
		"OS_IDENTITY_API_VERSION=3", "OS_INTERFACE=public", "OS_REGION_NAME=RegionOne")
	return &openstackCLI{t: t, bin: bin, env: env}
}

// run runs one command and returns its stdout, stderr and error.
func (c *openstackCLI) run(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	cmd.Stdin = nil // closed: the CLI must not read stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// ok runs a command that must succeed.
func (c *openstackCLI) ok(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("openstack %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// okJSON runs a command with -f json and decodes its output into v.
func (c *openstackCLI) okJSON(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append(args, "-f", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("openstack %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs a command that must fail with want in its error output.
func (c *openstackCLI) fails(want string, args ...string) {
	c.t.Helper()
	out, errOut, err := c.run(args...)
	if err == nil || !strings.Contains(errOut, want) {
		c.t.Fatalf("openstack %s: err %v, want failure with %q\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, want, out, errOut)
	}
}

// TestOpenstackCLI drives the Debian openstack CLI against the live binary: an admin issues
// a token, creates a project and a user, grants a role, lists assignments and the catalog;
// the new user then gets a token and is refused admin operations.
func TestOpenstackCLI(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "admin-pw"}})
	admin := newOpenstackCLI(t, srv, "admin", "admin-pw", "admin")

	var tok map[string]string
	admin.okJSON(&tok, "token", "issue")
	if tok["id"] == "" || tok["project_id"] == "" || tok["user_id"] == "" || tok["expires"] == "" {
		t.Fatalf("token issue: %v", tok)
	}

	var demo map[string]any
	admin.okJSON(&demo, "project", "create", "demo")
	demoID, _ := demo["id"].(string)
	if demo["name"] != "demo" || demo["domain_id"] != "default" || demo["enabled"] != true || demoID == "" {
		t.Fatalf("project create: %v", demo)
	}
	admin.fails("HTTP 409", "project", "create", "demo")
	if out := admin.ok("project", "list", "-f", "value", "-c", "Name"); !strings.Contains(out, "admin\n") || !strings.Contains(out, "demo\n") {
		t.Errorf("project list: %q", out)
	}
	if out := admin.ok("project", "show", "demo", "-f", "value", "-c", "id"); strings.TrimSpace(out) != demoID {
		t.Errorf("project show: %q", out)
	}

	var alice map[string]any
	admin.okJSON(&alice, "user", "create", "--password", "pw", "--project", "demo", "alice")
	if alice["name"] != "alice" || alice["default_project_id"] != demoID {
		t.Fatalf("user create: %v", alice)
	}
	if out := admin.ok("user", "list", "-f", "value", "-c", "Name"); !strings.Contains(out, "alice\n") {
		t.Errorf("user list: %q", out)
	}
	admin.ok("role", "add", "--project", "demo", "--user", "alice", "member")
	out := admin.ok("role", "assignment", "list", "--project", "demo", "--names", "-f", "value", "-c", "Role", "-c", "User", "-c", "Project")
	if strings.TrimSpace(out) != "member alice@Default demo@Default" {
		t.Errorf("role assignment list: %q", out)
	}

	var catalog []struct {
		Name, Type string
		Endpoints  []struct{ Interface, Region, URL string }
	}
	admin.okJSON(&catalog, "catalog", "list")
	urls := map[string]string{}
	for _, s := range catalog {
		for _, e := range s.Endpoints {
			if e.Region == "RegionOne" {
				urls[s.Type+"/"+e.Interface] = e.URL
			}
		}
	}
	api, reg := "http://"+srv.APIAddr, "http://"+srv.RegistryAddr
	for k, want := range map[string]string{"image/public": api, "image/internal": api, "identity/public": api + "/identity", "registry/public": reg, "registry/admin": reg} {
		if urls[k] != want {
			t.Errorf("catalog %s = %q, want %q (%+v)", k, urls[k], want, catalog)
		}
	}

	user := newOpenstackCLI(t, srv, "alice", "pw", "demo")
	var atok map[string]string
	user.okJSON(&atok, "token", "issue")
	if atok["project_id"] != demoID || atok["user_id"] != alice["id"] {
		t.Errorf("alice's token: %v", atok)
	}
	user.fails("HTTP 403", "project", "create", "mine")
	user.fails("HTTP 403", "user", "create", "--password", "x", "mallory")
	user.fails("HTTP 403", "role", "add", "--project", "demo", "--user", "alice", "admin")
	if out := user.ok("project", "list", "-f", "value", "-c", "Name"); strings.TrimSpace(out) != "demo" {
		t.Errorf("alice's project list: %q", out) // falls back to /users/{me}/projects
	}
	newOpenstackCLI(t, srv, "alice", "wrong", "demo").fails("HTTP 401", "token", "issue")

	// The admin revokes alice's token: it stops working at once.
	admin.ok("token", "revoke", atok["id"])
	req, _ := http.NewRequest("GET", api+"/identity/v3/auth/projects", nil)
	req.Header.Set("X-Auth-Token", atok["id"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("revoked token: %d", resp.StatusCode)
	}

	admin.ok("role", "remove", "--project", "demo", "--user", "alice", "member")
	user.fails("HTTP 401", "token", "issue")
	admin.ok("user", "delete", "alice")
	admin.ok("project", "delete", "demo")
	if out := admin.ok("project", "list", "-f", "value", "-c", "Name"); strings.TrimSpace(out) != "admin" {
		t.Errorf("project list after delete: %q", out)
	}
}
