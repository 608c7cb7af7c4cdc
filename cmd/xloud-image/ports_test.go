package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// portsServer starts the binary with the embedded identity and a known admin password.
func portsServer(t *testing.T, args ...string) *testenv.Server {
	return testenv.StartServer(t, testenv.ServerOptions{Args: append([]string{"--auth", "embedded", "--admin-password", "admin-pw"}, args...)})
}

// TestRegistryPortPointsToAPI: the identity paths and the root of the registry port answer
// 404 with a Keystone-style error naming the API port's URL (the request's host with the
// --api-addr port, or --api-public-url), and change nothing.
func TestRegistryPortPointsToAPI(t *testing.T) {
	srv := portsServer(t)
	api := "http://" + srv.APIAddr
	c := &client{t: t, base: "http://" + srv.RegistryAddr}
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/v3", api + "/identity/v3"},
		{"GET", "/v3/", api + "/identity/v3"},
		{"POST", "/v3/auth/tokens", api + "/identity/v3"},
		{"GET", "/identity/v3", api + "/identity/v3"},
		{"POST", "/identity/v3/auth/tokens", api + "/identity/v3"},
		{"GET", "/", api},
	} {
		resp, body, err := c.do(tc.method, tc.path, strings.NewReader("{}"), "Content-Type", "application/json")
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Error struct {
				Code    int
				Message string
			}
		}
		if resp.StatusCode != http.StatusNotFound || json.Unmarshal(body, &doc) != nil ||
			doc.Error.Code != 404 || !strings.Contains(doc.Error.Message, tc.want) {
			t.Errorf("%s %s on the registry port: %d %s, want 404 naming %s", tc.method, tc.path, resp.StatusCode, body, tc.want)
		}
	}
	_, body, _ := c.do("GET", "/", nil)
	var root map[string]any
	json.Unmarshal(body, &root)
	if root["registry"] != "http://"+srv.RegistryAddr+"/v2/" || root["image_api"] != api+"/v2/" || root["identity_api"] != api+"/identity/v3" {
		t.Errorf("root document of the registry port: %s", body)
	}

	pub := portsServer(t, "--api-public-url", "https://images.example.test/")
	c.base = "http://" + pub.RegistryAddr
	if resp, body, _ := c.do("GET", "/v3", nil); resp.StatusCode != 404 || !strings.Contains(string(body), "https://images.example.test/identity/v3") {
		t.Errorf("/v3 with --api-public-url: %d %s", resp.StatusCode, body)
	}
	noAuth := testenv.StartServer(t, testenv.ServerOptions{})
	c.base = "http://" + noAuth.RegistryAddr
	if resp, body, _ := c.do("GET", "/identity/v3", nil); resp.StatusCode != 404 || !strings.Contains(string(body), "--auth none") ||
		strings.Contains(string(body), "/identity/v3") {
		t.Errorf("/identity/v3 with --auth none: %d %s, want no identity URL", resp.StatusCode, body)
	}
	// With an external Keystone (unreachable here: the server retries it on use), the pointer
	// and the start log name it.
	keystone := "http://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) + "/v3"
	ks := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "keystone", "--keystone-url", keystone,
		"--keystone-user", "glance", "--keystone-password", "pw"}})
	c.base = "http://" + ks.RegistryAddr
	if resp, body, _ := c.do("GET", "/v3", nil); resp.StatusCode != 404 || !strings.Contains(string(body), "the Keystone at "+keystone) {
		t.Errorf("/v3 with --auth keystone: %d %s, want the Keystone's URL", resp.StatusCode, body)
	}
	if line := logLine(t, ks.Log(), "serving"); line["os_auth_url"] != keystone {
		t.Errorf("start log with --auth keystone: %v, want os_auth_url %s", line, keystone)
	}
}

// TestAPIPortPointsToRegistry: on the API port, what an OCI client sends to a registry is
// answered 421 with the OCI error UNSUPPORTED naming the registry's URL; the Image API's own
// paths (/v2/ for an OpenStack client, image tags) are untouched.
func TestAPIPortPointsToRegistry(t *testing.T) {
	srv := portsServer(t)
	reg := "http://" + srv.RegistryAddr
	c := &client{t: t, base: "http://" + srv.APIAddr}
	for _, tc := range []struct {
		method, path string
		hdr          []string
	}{
		{"GET", "/v2/_catalog", nil},
		{"GET", "/v2/admin/app/manifests/v1", nil},
		{"PUT", "/v2/admin/app/manifests/v1", []string{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}},
		{"GET", "/v2/admin/app/blobs/sha256:" + strings.Repeat("0", 64), nil},
		{"POST", "/v2/admin/app/blobs/uploads/", nil},
		{"PATCH", "/v2/admin/app/blobs/uploads/some-session", nil},
		{"GET", "/v2/admin/app/tags/list", nil},
		{"GET", "/v2/admin/app/referrers/sha256:" + strings.Repeat("0", 64), nil},
		{"GET", "/v2/images/app/manifests/v1", nil}, // a repository named images/app
		{"GET", "/token?service=xloud-image&scope=repository:admin/app:pull", nil},
		{"GET", "/v2/", []string{"User-Agent", "oras/1.3.6+Homebrew"}},
		{"GET", "/v2/", []string{"User-Agent", "docker/27.0.3 go/go1.22"}},
		{"GET", "/v2", []string{"User-Agent", "go-containerregistry/v0.22.1"}},
		{"GET", "/v2/", []string{"Authorization", "Basic YWRtaW46YWRtaW4tcHc="}},
	} {
		resp, body, err := c.do(tc.method, tc.path, nil, tc.hdr...)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Errors []struct{ Code, Message string }
		}
		if resp.StatusCode != http.StatusMisdirectedRequest || json.Unmarshal(body, &doc) != nil || len(doc.Errors) != 1 ||
			doc.Errors[0].Code != "UNSUPPORTED" || !strings.Contains(doc.Errors[0].Message, "the registry is at "+reg) {
			t.Errorf("%s %s %q on the API port: %d %s, want 421 UNSUPPORTED naming %s", tc.method, tc.path, tc.hdr, resp.StatusCode, body, reg)
		}
	}
	// The Image API keeps its paths: the version document for a client without OCI signs
	// (or with a Keystone token), and Glance's answers under /v2/images.
	for _, hdr := range [][]string{nil, {"User-Agent", "openstacksdk/4.4.0 keystoneauth1/5.10.0 python-requests/2.32.3 CPython/3.13.5"},
		{"User-Agent", "docker/27.0.3", "X-Auth-Token", "anything"}} {
		resp, body, _ := c.do("GET", "/v2/", nil, hdr...)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"CURRENT"`) {
			t.Errorf("GET /v2/ %q on the API port: %d %s, want the Image API version", hdr, resp.StatusCode, body)
		}
	}
	tok := adminToken(t, c)
	resp, body, _ := c.do("POST", "/v2/images", strings.NewReader(`{"name":"tagged"}`), "X-Auth-Token", tok, "Content-Type", "application/json")
	var img struct{ ID string }
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &img) != nil {
		t.Fatalf("create an image: %d %s", resp.StatusCode, body)
	}
	if resp, body, _ := c.do("PUT", "/v2/images/"+img.ID+"/tags/list", nil, "X-Auth-Token", tok); resp.StatusCode != http.StatusNoContent {
		t.Errorf("PUT an image tag named list: %d %s, want 204", resp.StatusCode, body)
	}
	if _, body, _ := c.do("GET", "/v2/images/"+img.ID, nil, "X-Auth-Token", tok); !strings.Contains(string(body), `"tags":["list"]`) {
		t.Errorf("image after tagging it list: %s", body)
	}
}

// adminToken signs the bootstrap admin in at the API port's identity API.
func adminToken(t *testing.T, c *client) string {
	t.Helper()
	auth := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"admin-pw"}}},
		"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}`
	resp, body, err := c.do("POST", "/identity/v3/auth/tokens", strings.NewReader(auth), "Content-Type", "application/json")
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("admin sign-in: %v %v %s", resp, err, body)
	}
	return resp.Header.Get("X-Subject-Token")
}

// runTool runs a client with a clean HOME and no OS_* variables of the machine, plus env.
func runTool(t *testing.T, bin string, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "OS_") && !strings.HasPrefix(e, "HOME=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(append(cmd.Env, "HOME="+cmd.Dir), env...)
	cmd.Stdin = nil
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestPortsWithRealClients: `oras login` at the API port fails and names the registry port
// (and succeeds at the registry port); `openstack` with OS_AUTH_URL at the registry port fails
// and names the identity URL, and works at the API port.
func TestPortsWithRealClients(t *testing.T) {
	srv := portsServer(t)
	oras := testenv.RequireTool(t, "oras")
	cfg := filepath.Join(t.TempDir(), "auth.json")
	login := func(addr string) (string, error) {
		return runTool(t, oras, nil, "login", "--plain-http", "--registry-config", cfg, "-u", "admin", "-p", "admin-pw", addr)
	}
	out, err := login(srv.APIAddr)
	if err == nil || !strings.Contains(out, "the registry is at http://"+srv.RegistryAddr) {
		t.Errorf("oras login at the API port: %v\n%s\nwant a failure naming the registry port", err, out)
	}
	if out, err := login(srv.RegistryAddr); err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Errorf("oras login at the registry port: %v\n%s", err, out)
	}

	openstack := testenv.RequireTool(t, "openstack")
	osEnv := func(authURL string) []string {
		return []string{"OS_AUTH_URL=" + authURL, "OS_USERNAME=admin", "OS_PASSWORD=admin-pw", "OS_PROJECT_NAME=admin",
			"OS_USER_DOMAIN_NAME=Default", "OS_PROJECT_DOMAIN_NAME=Default", "OS_IDENTITY_API_VERSION=3", "OS_INTERFACE=public"}
	}
	identity := "http://" + srv.APIAddr + "/identity/v3"
	for _, wrong := range []string{"http://" + srv.RegistryAddr + "/v3", "http://" + srv.RegistryAddr + "/identity/v3"} {
		out, err := runTool(t, openstack, osEnv(wrong), "image", "list")
		if err == nil || !strings.Contains(out, identity) {
			t.Errorf("openstack image list with OS_AUTH_URL=%s: %v\n%s\nwant a failure naming %s", wrong, err, out, identity)
		}
	}
	if out, err := runTool(t, openstack, osEnv(identity), "image", "list", "-f", "json"); err != nil || !strings.HasPrefix(strings.TrimSpace(out), "[") {
		t.Errorf("openstack image list at the API port: %v\n%s", err, out)
	}
}

// TestStartLogNamesURLs: every start, not only the first, logs OS_AUTH_URL, the Image API
// and registry URLs, and the generated admin password's file.
func TestStartLogNamesURLs(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded"}})
	for start := 1; start <= 2; start++ {
		line := logLine(t, srv.Log(), "serving")
		api := "http://" + srv.APIAddr
		want := map[string]string{"os_auth_url": api + "/identity/v3", "image_api": api,
			"registry": "http://" + srv.RegistryAddr, "admin_password_file": filepath.Join(srv.DataDir, "admin-password")}
		for k, v := range want {
			if line[k] != v {
				t.Errorf("start %d: log %s = %v, want %s", start, k, line[k], v)
			}
		}
		if start == 1 {
			srv.Stop()
			srv.Start()
		}
	}
	if strings.Contains(srv.Log(), "created the admin user") {
		t.Errorf("the second start created the admin again:\n%s", srv.Log())
	}
}

// logLine is the first JSON log record of msg.
func logLine(t *testing.T, log, msg string) map[string]any {
	t.Helper()
	for _, l := range strings.Split(log, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == msg {
			return rec
		}
	}
	t.Fatalf("no %q record in the log:\n%s", msg, log)
	return nil
}
