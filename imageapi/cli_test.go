package imageapi_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// cli runs the Debian openstack (6.0) and glance (4.1) CLIs as one user of a live server,
// with the embedded identity.
type cli struct {
	t   *testing.T
	env []string
}

func newCLI(t *testing.T, srv *testenv.Server, user, password, project string) *cli {
	env := []string{"HOME=" + t.TempDir()} // no clouds.yaml, a fresh glanceclient schema cache
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OS_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "OS_AUTH_URL=http://"+srv.APIAddr+"/identity/v3",
		"OS_USERNAME="+user, "OS_PASSWORD="+password, "OS_PROJECT_NAME="+project,
		"OS_USER_DOMAIN_NAME=Default", "OS_PROJECT_DOMAIN_NAME=Default",
		"OS_IDENTITY_API_VERSION=3", "OS_INTERFACE=public", "OS_REGION_NAME=RegionOne")
	return &cli{t: t, env: env}
}

// run runs a CLI with a stdin that is a pipe already closed for writing: the CLIs see no
// terminal and an empty input (OSC uploads stdin when `image create` has no --file).
func (c *cli) run(tool string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.RequireTool(c.t, tool), args...)
	cmd.Env = c.env
	r, w, err := os.Pipe()
	if err != nil {
		c.t.Fatal(err)
	}
	w.Close()
	defer r.Close()
	cmd.Stdin = r
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// ok runs a command that must succeed and returns its output.
func (c *cli) ok(tool string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(tool, args...)
	if err != nil {
		c.t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", tool, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// image runs `openstack image <args> -f json` and decodes the object it prints.
func (c *cli) image(args ...string) map[string]any {
	c.t.Helper()
	out := c.ok("openstack", append(append([]string{"image"}, args...), "-f", "json")...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		c.t.Fatalf("openstack image %v: not a JSON object: %s", args, out)
	}
	return m
}

// list runs `openstack image list <args> -f json` and returns the names listed.
func (c *cli) list(args ...string) []string {
	c.t.Helper()
	out := c.ok("openstack", append(append([]string{"image", "list"}, args...), "-f", "json")...)
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		c.t.Fatalf("openstack image list %v: %s", args, out)
	}
	names := []string{}
	for _, r := range rows {
		names = append(names, r["Name"].(string))
	}
	return names
}

// fails runs a command that must fail mentioning want.
func (c *cli) fails(want, tool string, args ...string) {
	c.t.Helper()
	out, errOut, err := c.run(tool, args...)
	if err == nil || !strings.Contains(out+errOut, want) {
		c.t.Fatalf("%s %s: err %v, want a failure with %q\nstdout: %s\nstderr: %s", tool, strings.Join(args, " "), err, want, out, errOut)
	}
}

// glanceRowRE captures the name of each row of `glance image-list`.
var glanceRowRE = regexp.MustCompile(`(?m)^\| [0-9a-f-]{36} \| (\S+)\s+\|`)

var glanceIDRE = regexp.MustCompile(`\|\s*id\s*\|\s*([0-9a-f-]{36})\s*\|`)

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func sameFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes (%v), want the %d uploaded", path, len(got), err, len(want))
	}
}

// TestOpenStackAndGlanceCLIs drives the real clients as new users would, against the live
// binary with the embedded identity.
func TestOpenStackAndGlanceCLIs(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "cli-admin-pw"}})
	idc := testenv.AdminIdentity(t, "http://"+srv.APIAddr, nil, "cli-admin-pw")
	demo := idc.Project(t, "demo")
	idc.User(t, demo, "alice", "alice-pw", "member")
	other := idc.Project(t, "other")
	idc.User(t, other, "bob", "bob-pw", "member")
	alice := newCLI(t, srv, "alice", "alice-pw", "demo")
	bob := newCLI(t, srv, "bob", "bob-pw", "other")
	admin := newCLI(t, srv, "admin", "cli-admin-pw", "admin")

	dir := t.TempDir()
	qcowPath, rawPath := filepath.Join(dir, "cirros.qcow2"), filepath.Join(dir, "disk.raw")
	if out, err := exec.Command(testenv.RequireTool(t, "qemu-img"), "create", "-f", "qcow2", qcowPath, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	qcow, _ := os.ReadFile(qcowPath)
	raw := rawImage(1 << 20)
	os.WriteFile(rawPath, raw, 0o644)

	// openstack image create --file: qcow2 and raw (raw/bare are the defaults).
	q := alice.image("create", "--disk-format", "qcow2", "--container-format", "bare", "--file", qcowPath,
		"--property", "os_distro=cirros", "cirros")
	qid := q["id"].(string)
	r := alice.image("create", "--file", rawPath, "--private", "rawdisk")
	rid := r["id"].(string)
	img := alice.image("show", "cirros")
	if img["status"] != "active" || img["size"] != float64(len(qcow)) || img["checksum"] != md5hex(qcow) ||
		img["virtual_size"] != float64(64<<20) || img["disk_format"] != "qcow2" || img["owner"] != demo {
		t.Fatalf("show cirros: %v", img)
	}
	if img := alice.image("show", rid); img["visibility"] != "private" || img["disk_format"] != "raw" || img["container_format"] != "bare" {
		t.Fatalf("show rawdisk: %v", img)
	}
	// list: --long, filters.
	out := alice.ok("openstack", "image", "list", "--long", "-f", "json")
	if !strings.Contains(out, `"Checksum": "`+md5hex(qcow)) || !strings.Contains(out, `"Project": "`+demo) {
		t.Fatalf("list --long: %s", out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "[cirros rawdisk]"},
		{[]string{"--property", "os_distro=cirros"}, "[cirros]"},
		{[]string{"--private"}, "[rawdisk]"},
		{[]string{"--status", "active", "--name", "rawdisk"}, "[rawdisk]"},
		{[]string{"--public"}, "[]"},
		{[]string{"--sort", "name:desc"}, "[rawdisk cirros]"}, // OSC sorts what it got
	} {
		if got := alice.list(c.args...); fmt.Sprint(got) != c.want {
			t.Errorf("image list %v: %v, want %s", c.args, got, c.want)
		}
	}
	if got := bob.list(); len(got) != 0 {
		t.Fatalf("bob lists %v", got)
	}

	// set: name, properties, tags, --protected, visibility.
	alice.ok("openstack", "image", "set", "--name", "cirros-0.6", "--property", "xloud_template=true", "--tag", "golden",
		"--protected", "--community", "cirros")
	img = alice.image("show", "cirros-0.6")
	props, _ := img["properties"].(map[string]any)
	if img["protected"] != true || img["visibility"] != "community" || props["xloud_template"] != "true" ||
		props["os_distro"] != "cirros" || !strings.Contains(strings.Join(anyStrings(img["tags"]), ","), "golden") {
		t.Fatalf("after set: %v", img)
	}
	alice.fails("403", "openstack", "image", "set", "--public", qid) // a member making an image public
	alice.fails("protected", "openstack", "image", "delete", qid)    // deleting a protected image
	alice.ok("openstack", "image", "unset", "--property", "xloud_template", "--tag", "golden", qid)
	if img := alice.image("show", qid); img["tags"] != nil && len(anyStrings(img["tags"])) != 0 {
		t.Fatalf("after unset: %v", img["tags"])
	}
	if got := bob.list("--community"); strings.Join(got, ",") != "cirros-0.6" {
		t.Fatalf("bob lists community %v", got)
	}

	// save: bytes identical.
	alice.ok("openstack", "image", "save", "--file", filepath.Join(dir, "saved.qcow2"), "cirros-0.6")
	sameFile(t, filepath.Join(dir, "saved.qcow2"), qcow)

	// glance: create, list, download, update; uploading twice is refused.
	out = alice.ok("glance", "image-create", "--name", "g1", "--disk-format", "raw", "--container-format", "bare",
		"--file", rawPath, "--property", "os_distro=debian")
	m := glanceIDRE.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "active") {
		t.Fatalf("glance image-create: %s", out)
	}
	gid := m[1]
	if out := alice.ok("glance", "image-list"); !strings.Contains(out, gid) || !strings.Contains(out, "cirros-0.6") {
		t.Fatalf("glance image-list: %s", out)
	}
	// The glance CLI sorts on the server (OSC sorts what it got): created_at and name both
	// ways, one image a page, so every page after the first starts from a marker.
	// Images created in the same second are ordered by id, in the direction given.
	type created struct{ name, at, id string }
	var byTime []created
	for _, id := range []string{qid, rid, gid} {
		img := alice.image("show", id)
		byTime = append(byTime, created{img["name"].(string), img["created_at"].(string), id})
	}
	sort.Slice(byTime, func(i, j int) bool {
		return byTime[i].at < byTime[j].at || byTime[i].at == byTime[j].at && byTime[i].id < byTime[j].id
	})
	oldest := byTime[0].name + " " + byTime[1].name + " " + byTime[2].name
	newest := byTime[2].name + " " + byTime[1].name + " " + byTime[0].name
	for _, c := range []struct{ sort, want string }{
		{"created_at:asc", oldest},
		{"created_at:desc", newest},
		{"name:desc", "rawdisk g1 cirros-0.6"},
		{"name:asc", "cirros-0.6 g1 rawdisk"},
	} {
		out := alice.ok("glance", "image-list", "--sort", c.sort, "--page-size", "1")
		var names []string
		for _, m := range glanceRowRE.FindAllStringSubmatch(out, -1) {
			names = append(names, m[1])
		}
		if strings.Join(names, " ") != c.want {
			t.Errorf("glance image-list --sort %s: %v, want %s\n%s", c.sort, names, c.want, out)
		}
	}
	alice.ok("glance", "image-download", "--file", filepath.Join(dir, "g1.raw"), gid)
	sameFile(t, filepath.Join(dir, "g1.raw"), raw)
	if out := alice.ok("glance", "image-update", "--name", "g1b", "--property", "k=v", "--min-disk", "1", gid); !strings.Contains(out, "g1b") {
		t.Fatalf("glance image-update: %s", out)
	}
	alice.ok("glance", "image-tag-update", gid, "t9")
	alice.fails("409", "glance", "image-upload", "--file", rawPath, gid)

	// members: share with bob's project, accept as bob, list, reject, remove.
	alice.ok("openstack", "image", "set", "--shared", rid)
	alice.ok("openstack", "image", "add", "project", rid, other)
	if got := bob.list(); len(got) != 0 {
		t.Fatalf("pending member lists %v", got)
	}
	bob.ok("openstack", "image", "set", "--accept", rid)
	if got := bob.list(); strings.Join(got, ",") != "rawdisk" {
		t.Fatalf("accepted member lists %v", got)
	}
	out = alice.ok("openstack", "image", "member", "list", rid, "-f", "json")
	if !strings.Contains(out, other) || !strings.Contains(out, "accepted") {
		t.Fatalf("member list: %s", out)
	}
	bob.ok("openstack", "image", "save", "--file", filepath.Join(dir, "bob.raw"), rid)
	sameFile(t, filepath.Join(dir, "bob.raw"), raw)
	bob.ok("openstack", "image", "set", "--reject", rid)
	if got := bob.list(); len(got) != 0 {
		t.Fatalf("rejected member lists %v", got)
	}
	alice.ok("openstack", "image", "remove", "project", rid, other)
	bob.fails("No Image found", "openstack", "image", "show", rid)
	bob.fails("403", "openstack", "image", "set", "--name", "mine", qid) // community: readable, not writable

	// deactivate: download refused (but for admins); reactivate.
	pull := registryPull(t, srv, "alice", "alice-pw", "demo/rawdisk", rid)
	if pull != http.StatusOK {
		t.Fatalf("registry pull of an active image: %d", pull)
	}
	alice.ok("openstack", "image", "set", "--deactivate", rid)
	if img := alice.image("show", rid); img["status"] != "deactivated" {
		t.Fatalf("deactivated: %v", img["status"])
	}
	if pull := registryPull(t, srv, "alice", "alice-pw", "demo/rawdisk", rid); pull != http.StatusForbidden {
		t.Fatalf("registry pull of a deactivated image: %d", pull)
	}
	alice.fails("Unable to download image", "openstack", "image", "save", "--file", filepath.Join(dir, "no.raw"), rid) // the SDK writes the 403 body and fails its checksum, as with Glance
	alice.fails("403", "glance", "image-download", "--file", filepath.Join(dir, "no2.raw"), rid)
	admin.ok("openstack", "image", "save", "--file", filepath.Join(dir, "admin.raw"), rid)
	alice.ok("openstack", "image", "set", "--activate", rid)
	alice.ok("openstack", "image", "save", "--file", filepath.Join(dir, "again.raw"), rid)
	sameFile(t, filepath.Join(dir, "again.raw"), raw)

	// The admin sees every project's images (but others' community ones).
	if got := admin.list(); strings.Join(got, ",") != "g1b,rawdisk" {
		t.Fatalf("admin lists %v", got)
	}
	if got := admin.list("--project", demo, "--all"); strings.Join(got, ",") != "cirros-0.6,g1b,rawdisk" {
		t.Fatalf("admin lists --project %v", got)
	}

	// delete, then 404 on both CLIs.
	alice.ok("openstack", "image", "delete", rid, gid)
	alice.fails("No Image found", "openstack", "image", "show", rid)
	alice.fails("404", "glance", "image-show", gid)
	if pull := registryPull(t, srv, "alice", "alice-pw", "demo/rawdisk", rid); pull != http.StatusNotFound {
		t.Fatalf("registry pull of a deleted image: %d", pull)
	}
	alice.ok("openstack", "image", "set", "--unprotected", qid)
	alice.ok("openstack", "image", "delete", qid)
	if got := alice.list(); len(got) != 0 {
		t.Fatalf("after delete: %v", got)
	}
}

func anyStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, x.(string))
	}
	return out
}

// TestLiveServerWiring: the binary serves the Image API on the API port (versions at /) and
// under /image on the registry port, with --auth none as Glance noauth, and
// --hashing-algorithm sets os_hash_algo.
func TestLiveServerWiring(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--hashing-algorithm", "sha512"}})
	e := &env{t: t, srv: &httptest.Server{URL: "http://" + srv.APIAddr}, token: map[string]string{}}
	if r := e.do("", "GET", "/", nil); r.status != http.StatusMultipleChoices {
		t.Fatalf("GET / on the API port: %d %s", r.status, r.body)
	}
	id := e.create("", map[string]any{"name": "open", "disk_format": "raw", "container_format": "bare"})
	e.upload("", id, rawImage(1000))
	sha := sha512.Sum512(rawImage(1000))
	if img := e.show(id); img["os_hash_algo"] != "sha512" || img["os_hash_value"] != hex.EncodeToString(sha[:]) || img["owner"] != nil {
		t.Fatalf("noauth sha512 image: %v", img)
	}
	reg := &env{t: t, srv: &httptest.Server{URL: "http://" + srv.RegistryAddr}, token: map[string]string{}}
	r := reg.do("", "GET", "/image/versions", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"http://`+srv.RegistryAddr+`/image/v2/"`) {
		t.Fatalf("versions on the registry port: %d %s", r.status, r.body)
	}
	if r := reg.do("", "GET", "/image/v2/images/"+id+"/file", nil); r.status != http.StatusOK || !bytes.Equal(r.body, rawImage(1000)) {
		t.Fatalf("download on the registry port: %d", r.status)
	}
	if r := reg.do("", "GET", "/v2/", nil); r.status != http.StatusOK || r.header.Get("Docker-Distribution-Api-Version") == "" {
		t.Fatalf("the registry's own /v2/: %d %v", r.status, r.header)
	}
}

// registryPull GETs the manifest tagged tag in repo through the Registry API with Basic
// credentials and returns the status.
func registryPull(t *testing.T, srv *testenv.Server, user, password, repo, tag string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL()+"/v2/"+repo+"/manifests/"+tag, nil)
	req.SetBasicAuth(user, password)
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
