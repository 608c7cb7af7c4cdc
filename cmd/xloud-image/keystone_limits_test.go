package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// (g) Unified limits registered in the real Keystone with the openstack CLI are what the
// server enforces (as oslo.limit reads them: the project's own limit, else the registered
// default). Runs last: once the image service has limits, every resource is limited.
func testKeystoneUnifiedLimits(t *testing.T, ks *testenv.Keystone, srv *testenv.Server) {
	bin := testenv.RequireTool(t, "openstack")
	osc := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = t.TempDir()
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, "OS_") && !strings.HasPrefix(e, "HOME=") {
				cmd.Env = append(cmd.Env, e)
			}
		}
		cmd.Env = append(cmd.Env, "HOME="+cmd.Dir,
			"OS_AUTH_URL="+ks.URL+"/v3", "OS_IDENTITY_API_VERSION=3", "OS_INTERFACE=public", "OS_REGION_NAME=RegionOne",
			"OS_USERNAME=admin", "OS_PASSWORD="+ks.AdminPassword, "OS_USER_DOMAIN_NAME=Default",
			"OS_PROJECT_NAME=admin", "OS_PROJECT_DOMAIN_NAME=Default")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openstack %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// oslo.limit reads limits with a system-scoped token: the service user needs reader on
	// system all, as Glance's install guide says.
	osc("role", "add", "--system", "all", "--user", ks.ServiceUser, "--user-domain", "Default", "reader")
	osc("service", "create", "--name", "glance", "image")
	for res, n := range map[string]string{"image_count_total": "1", "image_size_total": "100",
		"image_stage_total": "100", "image_count_uploading": "10"} {
		osc("registered", "limit", "create", "--service", "glance", "--default-limit", n, res)
	}
	osc("limit", "create", "--project", testenv.KeystoneProject, "--service", "glance", "--resource-limit", "2", "image_count_total")

	api := "http://" + srv.APIAddr
	call := func(tok, method, path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, api+path, strings.NewReader(body))
		req.Header.Set("X-Auth-Token", tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	member := ks.Token(t, testenv.KeystoneMember, testenv.KeystoneProject)
	other := ks.Token(t, testenv.KeystoneOther, testenv.KeystoneOtherProject)
	// Limits are cached briefly: wait until the server reads them.
	var usage struct {
		Usage map[string]struct{ Limit, Usage int64 } `json:"usage"`
	}
	for deadline := time.Now().Add(30 * time.Second); usage.Usage["image_count_total"].Limit != 2; time.Sleep(200 * time.Millisecond) {
		status, b := call(member, "GET", "/v2/info/usage", "")
		if status != http.StatusOK || json.Unmarshal(b, &usage) != nil {
			t.Fatalf("info/usage: %d %s", status, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never read the limits: %s", b)
		}
	}
	base := usage.Usage["image_count_total"].Usage // images earlier subtests made
	create := func(tok string) (int, []byte) {
		return call(tok, "POST", "/v2/images", `{"name":"limited","disk_format":"raw","container_format":"bare"}`)
	}
	for i := base; i < 2; i++ {
		if status, b := create(member); status != http.StatusCreated {
			t.Fatalf("create within the project's limit: %d %s", status, b)
		}
	}
	status, b := create(member)
	if status != http.StatusRequestEntityTooLarge || !bytes.Contains(b, []byte("image_count_total is over limit of 2 due to current usage 2 and delta 1")) {
		t.Fatalf("create over the project's limit: %d %s", status, b)
	}
	// Another project has no limit of its own: the registered default (1) applies.
	if status, b := create(other); status != http.StatusCreated {
		t.Fatalf("other project's first image: %d %s", status, b)
	}
	status, b = create(other)
	if status != http.StatusRequestEntityTooLarge || !bytes.Contains(b, []byte("image_count_total is over limit of 1 due to current usage 1 and delta 1")) {
		t.Fatalf("other project over the default: %d %s", status, b)
	}
}
