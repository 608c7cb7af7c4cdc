package imageapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// TestGlanceDownloadCLI: `glance image-import --import-method glance-download` fills a queued
// image from an image the region's Image API (found in the caller's service catalog, reached
// with the caller's token) holds: its bytes, its formats and the hw_/trait:/os_distro
// properties, not the others. A bad region, a missing remote image and a non-UUID id fail as
// Glance fails them, the target left queued with its own properties.
func TestGlanceDownloadCLI(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "gd-admin-pw"}})
	idc := testenv.AdminIdentity(t, "http://"+srv.APIAddr, nil, "gd-admin-pw")
	demo := idc.Project(t, "demo")
	idc.User(t, demo, "alice", "alice-pw", "member")
	alice := newCLI(t, srv, "alice", "alice-pw", "demo")

	dir := t.TempDir()
	disk := filepath.Join(dir, "src.qcow2")
	if out, err := exec.Command(testenv.RequireTool(t, "qemu-img"), "create", "-f", "qcow2", disk, "32M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	src := alice.image("create", "--disk-format", "qcow2", "--container-format", "bare", "--file", disk,
		"--property", "hw_cpu_cores=5", "--property", "os_distro=rhel", "--property", "speed=88mph", "source")
	srcID := src["id"].(string)
	alice.ok("openstack", "image", "set", "--property", "trait:STORAGE_DISK_SSD=required", srcID)

	tok, err := idc.Login("alice", "alice-pw", "demo")
	if err != nil {
		t.Fatal(err)
	}
	// The targets are queued images with formats and properties of their own (created
	// through the API: the openstack CLI would upload its empty stdin).
	newTarget := func(name string) string {
		body := `{"name":"` + name + `","disk_format":"iso","container_format":"ovf","hw_cpu_cores":"1","os_distro":"windows"}`
		req, _ := http.NewRequest("POST", "http://"+srv.APIAddr+"/v2/images", strings.NewReader(body))
		req.Header.Set("X-Auth-Token", tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var img map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&img); err != nil || resp.StatusCode != 201 {
			t.Fatalf("create %s: %d %v", name, resp.StatusCode, err)
		}
		return img["id"].(string)
	}
	tasks := func(id string) []map[string]any {
		var doc struct {
			Tasks []map[string]any `json:"tasks"`
		}
		if st := getJSONWithToken(t, "http://"+srv.APIAddr+"/v2/images/"+id+"/tasks", tok, &doc); st != 200 {
			t.Fatalf("tasks of %s: %d", id, st)
		}
		return doc.Tasks
	}
	waitTask := func(id, want string) map[string]any {
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			ts := tasks(id)
			if len(ts) == 1 && ts[0]["status"] == want {
				return ts[0]
			}
			if len(ts) == 1 && ts[0]["status"] != "pending" && ts[0]["status"] != "processing" {
				t.Fatalf("task of %s: %v, want %s", id, ts[0], want)
			}
		}
		t.Fatalf("task of %s never reached %s: %v", id, want, tasks(id))
		return nil
	}

	// Debian's glanceclient 4.1 shell cannot send a glance-download (it reads its
	// --remote-region as getattr(args, "remote-region"), always None, and exits); its library
	// can, and the shell would call exactly this.
	python := glanceInterpreter(t)
	glanceDownload := func(id, region, remote string) (string, error) {
		script := `import os, sys
from keystoneauth1 import loading, session
from glanceclient import Client
auth = loading.get_plugin_loader("password").load_from_options(auth_url=os.environ["OS_AUTH_URL"],
    username=os.environ["OS_USERNAME"], password=os.environ["OS_PASSWORD"], project_name=os.environ["OS_PROJECT_NAME"],
    user_domain_name="Default", project_domain_name="Default")
gc = Client("2", session=session.Session(auth=auth), region_name="RegionOne")
gc.images.image_import(sys.argv[1], "glance-download", remote_region=sys.argv[2], remote_image_id=sys.argv[3],
    remote_service_interface="public")
`
		out, errOut, err := alice.run(python, "-c", script, id, region, remote)
		return out + errOut, err
	}
	// Success: bytes, formats and the chosen properties come over.
	dst := newTarget("copy")
	if out, err := glanceDownload(dst, "RegionOne", srcID); err != nil {
		t.Fatalf("glance-download: %v %s", err, out)
	}
	waitTask(dst, "success")
	got := alice.image("show", dst)
	props, _ := got["properties"].(map[string]any)
	if got["status"] != "active" || got["disk_format"] != "qcow2" || got["container_format"] != "bare" ||
		got["checksum"] != alice.image("show", srcID)["checksum"] || fmt.Sprint(props["hw_cpu_cores"]) != "5" || props["os_distro"] != "rhel" ||
		props["trait:STORAGE_DISK_SSD"] != "required" || props["speed"] != nil {
		t.Fatalf("imported image: %v", got)
	}
	saved := filepath.Join(dir, "saved")
	alice.ok("openstack", "image", "save", "--file", saved, dst)
	want, _ := os.ReadFile(disk)
	sameFile(t, saved, want)

	// Failures: the task fails, the image is queued with its own properties.
	for _, c := range []struct{ name, region, remote string }{
		{"bad region", "not-a-region", srcID},
		{"missing image", "RegionOne", "36d4b546-64a2-4bb9-bdd0-ba676aa48f2c"},
	} {
		id := newTarget(c.name)
		if out, err := glanceDownload(id, c.region, c.remote); err != nil {
			t.Fatalf("%s: glance-download: %v %s", c.name, err, out)
		}
		task := waitTask(id, "failure")
		if msg, _ := task["message"].(string); msg == "" {
			t.Errorf("%s: the failed task says nothing: %v", c.name, task)
		}
		img := alice.image("show", id)
		props, _ := img["properties"].(map[string]any)
		if img["status"] != "queued" || img["disk_format"] != "iso" || fmt.Sprint(props["hw_cpu_cores"]) != "1" || props["os_distro"] != "windows" {
			t.Errorf("%s: image after the failed import: %v", c.name, img)
		}
	}
	// A remote id that is no UUID is refused at once.
	id := newTarget("bad uuid")
	if out, err := glanceDownload(id, "RegionOne", "foo"); err == nil || !strings.Contains(out, "does not look like a UUID") {
		t.Errorf("non-UUID remote id: %v %s", err, out)
	}
	if got := alice.image("show", id); got["status"] != "queued" {
		t.Errorf("image after a refused import: %v", got)
	}
}

// glanceInterpreter is the Python the glance CLI runs on (its #! line), which has the
// glanceclient library.
func glanceInterpreter(t *testing.T) string {
	b, err := os.ReadFile(testenv.RequireTool(t, "glance"))
	first, _, _ := strings.Cut(string(b), "\n")
	if err != nil || !strings.HasPrefix(first, "#!") {
		t.Fatalf("glance CLI: no interpreter line (%v)", err)
	}
	return strings.TrimSpace(strings.TrimPrefix(first, "#!"))
}

// TestGlanceDownloadBetweenServers: two servers in one cloud, as two regions share one
// Keystone: A keeps its embedded identity, B validates tokens at A (--auth keystone). A user
// signed in once imports into B an image that lives in A: B finds A's Image API in the
// user's service catalog, forwards the user's token, and receives the same bytes.
func TestGlanceDownloadBetweenServers(t *testing.T) {
	t.Parallel()
	a := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "gd2-admin-pw"}})
	idc := testenv.AdminIdentity(t, "http://"+a.APIAddr, nil, "gd2-admin-pw")
	demo := idc.Project(t, "demo")
	idc.User(t, demo, "alice", "alice-pw", "member")
	service := idc.Project(t, "service")
	idc.User(t, service, "image-b", "image-b-pw", "admin")
	b := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "keystone",
		"--keystone-url", "http://" + a.APIAddr + "/identity/v3", "--keystone-user", "image-b",
		"--keystone-password", "image-b-pw", "--keystone-project", "service"}})

	alice := newCLI(t, a, "alice", "alice-pw", "demo")
	dir := t.TempDir()
	disk := filepath.Join(dir, "src.qcow2")
	if out, err := exec.Command(testenv.RequireTool(t, "qemu-img"), "create", "-f", "qcow2", disk, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	src := alice.image("create", "--disk-format", "qcow2", "--container-format", "bare", "--file", disk,
		"--property", "hw_disk_bus=virtio", "in-a")

	// The target in B, created with the token A issued.
	tok, err := idc.Login("alice", "alice-pw", "demo")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://"+b.APIAddr+"/v2/images", strings.NewReader(`{"name":"in-b","disk_format":"raw","container_format":"bare"}`))
	req.Header.Set("X-Auth-Token", tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var dst map[string]any
	json.NewDecoder(resp.Body).Decode(&dst)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("create in B: %d %v", resp.StatusCode, dst)
	}
	dstID := dst["id"].(string)

	// glanceclient's library against B (the catalog lists A's Image API, so B is named).
	script := `import os, sys
from keystoneauth1 import loading, session
from glanceclient import Client
auth = loading.get_plugin_loader("password").load_from_options(auth_url=os.environ["OS_AUTH_URL"],
    username=os.environ["OS_USERNAME"], password=os.environ["OS_PASSWORD"], project_name=os.environ["OS_PROJECT_NAME"],
    user_domain_name="Default", project_domain_name="Default")
gc = Client("2", session=session.Session(auth=auth), endpoint=sys.argv[1])
gc.images.image_import(sys.argv[2], "glance-download", remote_region="RegionOne", remote_image_id=sys.argv[3])
`
	if out, errOut, err := alice.run(glanceInterpreter(t), "-c", script, "http://"+b.APIAddr, dstID, src["id"].(string)); err != nil {
		t.Fatalf("glance-download into B: %v %s %s", err, out, errOut)
	}
	var img map[string]any
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		img = map[string]any{}
		if st := getJSONWithToken(t, "http://"+b.APIAddr+"/v2/images/"+dstID, tok, &img); st != 200 {
			t.Fatalf("show in B: %d", st)
		}
		if img["status"] == "active" || img["status"] == "queued" {
			break
		}
	}
	want, _ := os.ReadFile(disk)
	if img["status"] != "active" || img["disk_format"] != "qcow2" || img["hw_disk_bus"] != "virtio" || img["size"] != float64(len(want)) {
		t.Fatalf("image in B after glance-download: %v\nB's log:\n%s", img, b.Log())
	}
	req, _ = http.NewRequest("GET", "http://"+b.APIAddr+"/v2/images/"+dstID+"/file", nil)
	req.Header.Set("X-Auth-Token", tok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, want) {
		t.Fatalf("B serves %d bytes, A's image has %d", len(got), len(want))
	}
}
