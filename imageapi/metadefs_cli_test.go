package imageapi_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/internal/testenv"
)

// xloudNamespace is the Xloud docs' example (xloud-image-docs.md §7, namespace-schema.json:
// "org.xloud.images", "Xloud Image Properties", typed enum/string/boolean/integer
// properties), completed as the guide describes it. The docs' resource type
// OS::Image::Image is a doc error for OS::Glance::Image.
const xloudNamespace = `{
  "namespace": "org.xloud.images",
  "display_name": "Xloud Image Properties",
  "description": "Standardized OS and hardware metadata for Xloud images",
  "visibility": "public",
  "protected": true,
  "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "xloud_"}],
  "properties": {
    "os_family": {"title": "OS family", "type": "string", "enum": ["ubuntu", "rhel", "debian", "windows", "centos"]},
    "support_tier": {"title": "Support tier", "type": "string", "enum": ["lts", "standard", "eol", "preview"]},
    "gpu_compatible": {"title": "GPU compatible", "type": "boolean"},
    "min_vcpus": {"title": "Minimum vCPUs", "type": "integer", "minimum": 1, "maximum": 64},
    "owner_team": {"title": "Owning team", "type": "string", "maxLength": 32}
  },
  "tags": [{"name": "golden"}, {"name": "production-ready"}]
}`

// TestMetadefsWithGlanceCLI drives the metadefs API with the real glance CLI (4.1, md-*
// commands: Debian's openstack 6.0 has no `image metadef` commands, they came in 6.1) as an
// admin and a member would, against the live binary with the embedded identity and the
// property check on: the docs' org.xloud.images example, the shipped namespaces, and the
// check refusing an image property outside its enum.
func TestMetadefsWithGlanceCLI(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "md-admin-pw",
		"--validate-metadef-properties"}})
	idc := testenv.AdminIdentity(t, "http://"+srv.APIAddr, nil, "md-admin-pw")
	demo := idc.Project(t, "demo")
	idc.User(t, demo, "alice", "alice-pw", "member")
	alice := newCLI(t, srv, "alice", "alice-pw", "demo")
	admin := newCLI(t, srv, "admin", "md-admin-pw", "admin")

	file := filepath.Join(t.TempDir(), "namespace-schema.json")
	os.WriteFile(file, []byte(xloudNamespace), 0o644)
	out := admin.ok("glance", "md-namespace-import", "--file", file)
	for _, want := range []string{"org.xloud.images", "Xloud Image Properties", `"min_vcpus"`, `"golden"`, "OS::Glance::Image"} {
		if !strings.Contains(out, want) {
			t.Fatalf("md-namespace-import: no %q in\n%s", want, out)
		}
	}
	list := alice.ok("glance", "md-namespace-list", "--page-size", "7")
	for _, want := range []string{"org.xloud.images", "OS::Compute::Libvirt", "OS::Compute::Hypervisor", "OS::Software::DBMS"} {
		if !strings.Contains(list, want) {
			t.Errorf("md-namespace-list (paged by 7): no %s in\n%s", want, list)
		}
	}
	if out := alice.ok("glance", "md-namespace-list", "--resource-types", "OS::Nova::Aggregate"); strings.Contains(out, "org.xloud.images") || !strings.Contains(out, "OS::Compute::AggregateDiskFilter") {
		t.Errorf("md-namespace-list --resource-types: %s", out)
	}
	if out := alice.ok("glance", "md-namespace-show", "org.xloud.images", "--resource-type", "OS::Glance::Image"); !strings.Contains(out, "xloud_os_family") {
		t.Errorf("md-namespace-show --resource-type: prefix not applied\n%s", out)
	}
	if out := alice.ok("glance", "md-property-show", "org.xloud.images", "os_family"); !strings.Contains(out, "ubuntu") {
		t.Errorf("md-property-show: %s", out)
	}
	if out := alice.ok("glance", "md-resource-type-list"); !strings.Contains(out, "OS::Glance::Image") || !strings.Contains(out, "OS::Nova::Flavor") {
		t.Errorf("md-resource-type-list: %s", out)
	}

	// Admins manage the contents; glanceclient validates each body against our schemas.
	admin.ok("glance", "md-property-create", "org.xloud.images", "--name", "arch", "--title", "Architecture",
		"--schema", `{"type": "string", "enum": ["x86_64", "aarch64"]}`)
	admin.ok("glance", "md-object-create", "org.xloud.images", "--name", "Hardware",
		"--schema", `{"description": "GPU needs", "properties": {"gpu_model": {"title": "GPU model", "type": "string"}}}`)
	admin.ok("glance", "md-object-update", "org.xloud.images", "Hardware", "--name", "Accelerators")
	// Without --append the tags are replaced (glanceclient 4.1's --append sends a boolean
	// header and fails before any request; X-Openstack-Append is in TestMetadefContentsAPI).
	admin.ok("glance", "md-tag-create-multiple", "org.xloud.images", "--names", "lts,uefi")
	admin.ok("glance", "md-namespace-update", "org.xloud.images", "--display-name", "Xloud Images")
	if out := alice.ok("glance", "md-object-list", "org.xloud.images"); !strings.Contains(out, "Accelerators") {
		t.Errorf("md-object-list: %s", out)
	}
	if out := alice.ok("glance", "md-tag-list", "org.xloud.images"); !strings.Contains(out, "uefi") || strings.Contains(out, "golden") {
		t.Errorf("md-tag-list after a replace: %s", out)
	}
	if out := alice.ok("glance", "md-property-list", "org.xloud.images"); !strings.Contains(out, "arch") {
		t.Errorf("md-property-list: %s", out)
	}
	if out := alice.ok("glance", "md-namespace-show", "org.xloud.images"); !strings.Contains(out, "Xloud Images") {
		t.Errorf("md-namespace-show after update: %s", out)
	}

	// Members read but do not write; a protected namespace is not deleted.
	for _, args := range [][]string{
		{"md-namespace-create", "team.ns"},
		{"md-property-delete", "org.xloud.images", "arch"},
		{"md-tag-create", "org.xloud.images", "--name", "mine"},
	} {
		if _, errOut, err := alice.run("glance", args...); err == nil || !strings.Contains(errOut, "403") {
			t.Errorf("member: glance %v succeeded or not 403: %q", args, errOut)
		}
	}
	if _, errOut, err := admin.run("glance", "md-namespace-delete", "org.xloud.images"); err == nil || !strings.Contains(errOut, "protected") {
		t.Errorf("delete of a protected namespace: %v %q", err, errOut)
	}

	// The property check: a value outside the enum is refused, with the reason.
	_, errOut, err := alice.run("openstack", "image", "create", "--property", "xloud_os_family=plan9", "refused")
	if err == nil || !strings.Contains(errOut, "xloud_os_family") || !strings.Contains(errOut, "ubuntu") {
		t.Fatalf("image with xloud_os_family=plan9: %v %q", err, errOut)
	}
	img := alice.image("create", "--property", "xloud_os_family=ubuntu", "--property", "xloud_min_vcpus=2",
		"--property", "hw_disk_bus=virtio", "accepted")
	if img["status"] != "queued" {
		t.Fatalf("image with valid properties: %v", img)
	}
	// OSC prints only the status of a refused PATCH; the image keeps its value.
	if _, errOut, err := alice.run("openstack", "image", "set", "--property", "xloud_min_vcpus=65", "accepted"); err == nil || !strings.Contains(errOut, "400") {
		t.Errorf("image set xloud_min_vcpus=65: %v %q", err, errOut)
	}
	if img := alice.image("show", "accepted"); !strings.Contains(fmt.Sprint(img["properties"]), "xloud_min_vcpus:2") {
		t.Errorf("after a refused set: %v", img["properties"])
	}
	if out := alice.ok("glance", "image-list"); strings.Contains(out, "refused") {
		t.Errorf("a refused create left an image: %s", out)
	}
}
