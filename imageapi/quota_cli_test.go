package imageapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// limitsJSON runs an openstack limit command with -f json and decodes its object.
func (c *cli) object(args ...string) map[string]any {
	c.t.Helper()
	out := c.ok("openstack", append(args, "-f", "json")...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		c.t.Fatalf("openstack %v: not a JSON object: %s", args, out)
	}
	return m
}

// getJSONWithToken GETs url with a token and decodes the JSON answer.
func getJSONWithToken(t *testing.T, url, token string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-Auth-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
		}
	}
	return resp.StatusCode
}

// createImage creates a queued raw/bare image over HTTP and returns its id.
func createImage(t *testing.T, srv *testenv.Server, token, name string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+srv.APIAddr+"/v2/images",
		strings.NewReader(`{"name":"`+name+`","disk_format":"raw","container_format":"bare"}`))
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var img struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&img); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create %s: %s %v", name, resp.Status, err)
	}
	return img.ID
}

// TestUnifiedLimitsCLI registers Glance's limits with the real `openstack registered limit
// create` and `openstack limit create` against the embedded identity, then goes over each
// limit with `openstack image create --file`: 413 with Glance's text, the refused image left
// queued with nothing stored, and GET /v2/info/usage reporting the numbers.
func TestUnifiedLimitsCLI(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "q-admin-pw"}})
	idc := testenv.AdminIdentity(t, "http://"+srv.APIAddr, nil, "q-admin-pw")
	demo := idc.Project(t, "demo")
	idc.User(t, demo, "alice", "alice-pw", "member")
	alice := newCLI(t, srv, "alice", "alice-pw", "demo")
	admin := newCLI(t, srv, "admin", "q-admin-pw", "admin")
	aliceToken, err := idc.Login("alice", "alice-pw", "demo")
	if err != nil {
		t.Fatal(err)
	}
	usage := func() map[string]map[string]float64 {
		var u struct {
			Usage map[string]map[string]float64 `json:"usage"`
		}
		if st := getJSONWithToken(t, "http://"+srv.APIAddr+"/v2/info/usage", aliceToken, &u); st != http.StatusOK {
			t.Fatalf("info/usage: %d", st)
		}
		return u.Usage
	}
	// Before any registered limit quotas are off, as Glance without use_keystone_limits.
	if u := usage(); len(u) != 0 {
		t.Fatalf("usage without limits: %v", u)
	}

	// Bad input changes nothing: a member may not register limits, an unknown service or a
	// project limit without its registered default are refused.
	alice.fails("You are not authorized", "openstack", "registered", "limit", "create", "--service", "glance",
		"--default-limit", "1", "image_size_total")
	admin.fails("No service with a name or ID of 'nova'", "openstack", "registered", "limit", "create",
		"--service", "nova", "--default-limit", "1", "image_size_total")
	admin.fails("register its default first", "openstack", "limit", "create", "--project", "demo", "--service", "glance",
		"--resource-limit", "3", "image_count_total")

	for res, n := range map[string]string{"image_size_total": "1", "image_stage_total": "10",
		"image_count_total": "2", "image_count_uploading": "1"} {
		rl := admin.object("registered", "limit", "create", "--service", "glance", "--region", "RegionOne",
			"--default-limit", n, res)
		if rl["resource_name"] != res || rl["region_id"] != "RegionOne" || rl["id"] == "" {
			t.Fatalf("registered limit create %s: %v", res, rl)
		}
	}
	admin.fails("Conflict", "openstack", "registered", "limit", "create", "--service", "glance", "--region", "RegionOne",
		"--default-limit", "5", "image_size_total")
	pl := admin.object("limit", "create", "--project", "demo", "--service", "glance", "--region", "RegionOne",
		"--resource-limit", "3", "image_count_total")
	if pl["project_id"] != demo || pl["resource_limit"] != float64(3) {
		t.Fatalf("limit create: %v", pl)
	}
	if out := admin.ok("openstack", "registered", "limit", "list", "-f", "json"); strings.Count(out, `"Resource Name"`) != 4 {
		t.Fatalf("registered limit list: %s", out)
	}
	if out := alice.ok("openstack", "limit", "list", "-f", "json"); !strings.Contains(out, "image_count_total") {
		t.Fatalf("limit list as the project's member: %s", out)
	}
	u := usage()
	if u["image_count_total"]["limit"] != 3 || u["image_size_total"]["limit"] != 1 || u["image_count_total"]["usage"] != 0 {
		t.Fatalf("usage: %v", u)
	}

	// image_size_total = 1 MiB, soft: the first 1 MiB upload is allowed (0+1 > 1 is false);
	// OSC declares the size of the second (1+1 > 1): refused before anything is stored.
	// openstack image create --file deletes the image it made when the upload fails.
	path := filepath.Join(t.TempDir(), "disk.raw")
	os.WriteFile(path, rawImage(1<<20), 0o644)
	alice.image("create", "--file", path, "one")
	if one := alice.image("show", "one"); one["status"] != "active" {
		t.Fatalf("first upload: %v", one)
	}
	alice.fails("413", "openstack", "image", "create", "--file", path, "two")
	// glance image-upload sends chunked data (size unknown, delta 0): at usage 1 of 1 it is
	// allowed and goes over, as Glance's soft limit does; the next one is refused and its
	// image stays queued with no data. (Images created over HTTP: the CLIs upload their
	// empty stdin when given no file.)
	twoID := createImage(t, srv, aliceToken, "two")
	alice.ok("glance", "image-upload", "--file", path, twoID)
	threeID := createImage(t, srv, aliceToken, "three")
	alice.fails("413", "glance", "image-upload", "--file", path, threeID)
	three := alice.image("show", "three")
	if three["status"] != "queued" || three["size"] != nil || three["checksum"] != nil {
		t.Fatalf("refused upload left: %v", three)
	}
	if st := getJSONWithToken(t, "http://"+srv.APIAddr+"/v2/images/"+threeID+"/file", aliceToken, nil); st != http.StatusNoContent {
		t.Fatalf("download of the refused image: %d, want 204 (no data)", st)
	}
	// OSC and glanceclient print only the status; the body is Glance's text, with no
	// Retry-After (tempest would retry instead of failing).
	req, _ := http.NewRequest(http.MethodPut, "http://"+srv.APIAddr+"/v2/images/"+threeID+"/file",
		strings.NewReader(string(rawImage(1<<20))))
	req.Header.Set("X-Auth-Token", aliceToken)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Retry-After") != "" ||
		!strings.Contains(string(body), "Project "+demo+" is over a limit for [Resource image_size_total is over limit of 1 due to current usage 2 and delta 1]") {
		t.Fatalf("upload over image_size_total: %s %v %s", resp.Status, resp.Header, body)
	}
	u = usage()
	if u["image_size_total"]["usage"] != 2 || u["image_count_total"]["usage"] != 3 || u["image_count_uploading"]["usage"] != 0 {
		t.Fatalf("usage after the refusal: %v", u)
	}

	// image_count_total = 3 for demo (its own limit over the default 2): a fourth is refused.
	alice.fails("413", "openstack", "image", "create", "four")
	if names := alice.list(); strings.Join(names, " ") != "one three two" {
		t.Fatalf("images after the refused create: %v", names)
	}
	// Deleting frees at once: usage is the records', not a counter that lags.
	alice.ok("openstack", "image", "delete", "one")
	createImage(t, srv, aliceToken, "four")
	if u := usage(); u["image_size_total"]["usage"] != 1 || u["image_count_total"]["usage"] != 3 {
		t.Fatalf("usage after delete and create: %v", u)
	}
	// Raising the project's limit with `openstack limit set` takes effect at once.
	admin.ok("openstack", "limit", "set", "--resource-limit", "4", pl["id"].(string))
	createImage(t, srv, aliceToken, "five")
}

// TestRegistryPushOverLimit: registry pushes count toward image_size_total, each blob once
// per project however many repositories and tags hold it; a push that would take the
// project over is refused with DENIED naming the limit, and leaves no tag.
func TestRegistryPushOverLimit(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "r-admin-pw"}})
	idc := testenv.AdminIdentity(t, "http://"+srv.APIAddr, nil, "r-admin-pw")
	demo := idc.Project(t, "demo")
	idc.User(t, demo, "alice", "alice-pw", "member")
	admin := newCLI(t, srv, "admin", "r-admin-pw", "admin")
	admin.object("registered", "limit", "create", "--service", "glance", "--default-limit", "1", "image_size_total")

	dir := t.TempDir()
	oras := testenv.RequireTool(t, "oras")
	orasRun := func(args ...string) (string, error) {
		if args[0] == "push" {
			args = append(args, "--no-tty")
		}
		cmd := exec.Command(oras, append(args, "--plain-http", "-u", "alice", "-p", "alice-pw")...)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(dir, "oras-config"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	write := func(name string, seed int) {
		b := rawImage(600 << 10)
		b[0] = byte(seed)
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	write("a.bin", 1)
	write("b.bin", 2)
	reg := srv.RegistryAddr + "/demo/"
	// 600 KiB: within 1 MiB.
	if out, err := orasRun("push", reg+"files:a", "a.bin"); err != nil {
		t.Fatalf("first push: %v\n%s", err, out)
	}
	// The same blob under another repository and tag adds nothing.
	if out, err := orasRun("push", reg+"other:a", "a.bin"); err != nil {
		t.Fatalf("same blob again: %v\n%s", err, out)
	}
	// Another 600 KiB would make 1200 KiB: DENIED, naming the limit; no tag.
	out, err := orasRun("push", reg+"files:b", "b.bin")
	// (oras prints the DENIED code as "denied:".)
	if err == nil || !strings.Contains(out, "denied: project demo is over its image_size_total limit of 1 MiB") {
		t.Fatalf("push over the limit: %v\n%s", err, out)
	}
	if out, _ := orasRun("repo", "tags", reg+"files"); !strings.HasSuffix(out, "\na\n") {
		t.Fatalf("tags after the refused push: %q", out)
	}
	// Raising the limit lets the same push through.
	pl := admin.object("limit", "create", "--project", "demo", "--service", "glance", "--resource-limit", "2", "image_size_total")
	if pl["resource_limit"] != float64(2) {
		t.Fatalf("limit create: %v", pl)
	}
	if out, err := orasRun("push", reg+"files:b", "b.bin"); err != nil {
		t.Fatalf("push after raising the limit: %v\n%s", err, out)
	}
}

// TestStageLimitsCLI: image_stage_total and image_count_uploading with the real glance CLI
// (glance image-stage sends chunked data: delta 0, the soft limit) and openstack image
// create --file; a glance-direct import frees the stage.
func TestStageLimitsCLI(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "s-admin-pw"}})
	idc := testenv.AdminIdentity(t, "http://"+srv.APIAddr, nil, "s-admin-pw")
	demo := idc.Project(t, "demo")
	idc.User(t, demo, "alice", "alice-pw", "member")
	alice := newCLI(t, srv, "alice", "alice-pw", "demo")
	admin := newCLI(t, srv, "admin", "s-admin-pw", "admin")
	for res, n := range map[string]string{"image_size_total": "100", "image_stage_total": "1",
		"image_count_total": "100", "image_count_uploading": "2"} {
		admin.object("registered", "limit", "create", "--service", "glance", "--default-limit", n, res)
	}
	token, err := idc.Login("alice", "alice-pw", "demo")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "disk.raw")
	os.WriteFile(path, rawImage(1<<20), 0o644)
	a, b, c := createImage(t, srv, token, "a"), createImage(t, srv, token, "b"), createImage(t, srv, token, "c")
	alice.ok("glance", "image-stage", "--file", path, a)
	alice.ok("glance", "image-stage", "--file", path, b) // usage 1 of 1, delta 0: allowed, goes over
	alice.fails("413", "glance", "image-stage", "--file", path, c)
	if img := alice.image("show", c); img["status"] != "queued" || img["size"] != nil {
		t.Fatalf("refused stage left: %v", img)
	}
	// Two images are staged: a third upload is one too many.
	alice.fails("413", "openstack", "image", "create", "--file", path, "d")
	// The import of a moves its data from the stage to the store.
	alice.ok("glance", "image-import", "--import-method", "glance-direct", a)
	for deadline := time.Now().Add(30 * time.Second); alice.image("show", a)["status"] != "active"; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("import of a did not finish")
		}
	}
	var u struct {
		Usage map[string]map[string]float64 `json:"usage"`
	}
	getJSONWithToken(t, "http://"+srv.APIAddr+"/v2/info/usage", token, &u)
	if u.Usage["image_stage_total"]["usage"] != 1 || u.Usage["image_count_uploading"]["usage"] != 1 || u.Usage["image_size_total"]["usage"] != 1 {
		t.Fatalf("usage after the import: %v", u.Usage)
	}
	alice.ok("glance", "image-stage", "--file", path, c) // usage 1 of 1 again: allowed
}
