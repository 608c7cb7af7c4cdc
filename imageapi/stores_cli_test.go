package imageapi_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestMultiStoreCLIs drives Glance's multi-store through the real glance (4.1) and
// openstack (6.0) CLIs against the live binary run with two stores: a file store (the
// default) and an S3 store on a real versitygw.
func TestMultiStoreCLIs(t *testing.T) {
	s3 := testenv.StartS3(t)
	bucket := s3.Bucket("images")
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "embedded", "--admin-password", "ms-admin-pw",
		"--store", "fast=file://" + filepath.Join(t.TempDir(), "fast"), "--store", "cheap=" + s3.URL(bucket, "glance"),
		"--default-store", "fast"}})
	idc := testenv.AdminIdentity(t, "http://"+srv.APIAddr, nil, "ms-admin-pw")
	demo := idc.Project(t, "demo")
	idc.User(t, demo, "alice", "alice-pw", "member")
	alice := newCLI(t, srv, "alice", "alice-pw", "demo")
	admin := newCLI(t, srv, "admin", "ms-admin-pw", "admin")

	data := rawImage(3 << 20)
	path := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	stores := func(id string) string {
		t.Helper()
		img := alice.image("show", id)
		if s, ok := img["stores"].(string); ok {
			return s
		}
		props, _ := img["properties"].(map[string]any)
		s, _ := props["stores"].(string)
		return s
	}
	waitStores := func(id, want string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for stores(id) != want {
			if time.Now().After(deadline) {
				t.Fatalf("image %s: stores %q, want %q (%v)", id, stores(id), want, alice.image("show", id))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Images to upload to are made over HTTP: the CLIs upload their empty stdin when given
	// no file.
	aliceToken, err := idc.Login("alice", "alice-pw", "demo")
	if err != nil {
		t.Fatal(err)
	}
	create := func(name string) string { return createImage(t, srv, aliceToken, name) }

	// stores-info: both stores, the default marked; details for admins only, no secrets.
	out := alice.ok("glance", "stores-info")
	if !strings.Contains(out, `"id": "fast"`) || !strings.Contains(out, `"id": "cheap"`) || !strings.Contains(out, `"default": "true"`) {
		t.Fatalf("stores-info: %s", out)
	}
	out = admin.ok("glance", "stores-info", "--detail")
	if !strings.Contains(out, `"type": "s3"`) || !strings.Contains(out, `"bucket": "images"`) || strings.Contains(out, s3.SecretKey) {
		t.Fatalf("stores-info --detail: %s", out)
	}
	alice.fails("403", "glance", "stores-info", "--detail")

	// image-upload --store: the data lands in the S3 store.
	up := create("uploaded")
	alice.fails("not valid for this cloud", "glance", "image-upload", "--store", "nowhere", "--file", path, up)
	objects := len(s3.Objects(bucket))
	alice.ok("glance", "image-upload", "--store", "cheap", "--file", path, up)
	if got := stores(up); got != "cheap" || len(s3.Objects(bucket)) != objects+1 {
		t.Fatalf("after upload to cheap: stores %q, objects %v", got, s3.Objects(bucket))
	}

	// image-create-via-import: --all-stores and --store (on a terminal: with a pipe for
	// stdin glanceclient takes it as data too and refuses --file).
	viaImport := func(name string, args ...string) string {
		t.Helper()
		out, err := alice.toolOnTerminal("glance", append([]string{"image-create-via-import", "--name", name, "--disk-format", "raw",
			"--container-format", "bare", "--file", path}, args...)...)
		m := glanceIDRE.FindStringSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("image-create-via-import %v: %v\n%s", args, err, out)
		}
		return m[1]
	}
	all := viaImport("everywhere", "--all-stores", "True")
	waitStores(all, "cheap,fast")
	waitStores(viaImport("s3only", "--store", "cheap"), "cheap")

	// copy-image: admins only, server-side.
	alice.fails("403", "glance", "image-import", "--import-method", "copy-image", "--stores", "fast", up)
	admin.ok("glance", "image-import", "--import-method", "copy-image", "--stores", "fast", up)
	waitStores(up, "cheap,fast")
	admin.fails("already present", "glance", "image-import", "--import-method", "copy-image", "--stores", "cheap", up)

	// stores-delete: one store at a time, never the last.
	alice.fails("403", "glance", "stores-delete", "--store", "cheap", up)
	admin.ok("glance", "stores-delete", "--store", "cheap", up)
	if got := stores(up); got != "fast" {
		t.Fatalf("after stores-delete: %q", got)
	}
	admin.fails("409", "glance", "stores-delete", "--store", "fast", up)

	// The data reads back whole through both CLIs.
	saved := filepath.Join(t.TempDir(), "saved")
	alice.ok("openstack", "image", "save", "--file", saved, up)
	sameFile(t, saved, data)
	alice.ok("glance", "image-download", "--file", saved, all)
	sameFile(t, saved, data)
	var shown map[string]any
	if err := json.Unmarshal([]byte(alice.ok("openstack", "image", "show", "-f", "json", all)), &shown); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains([]byte(alice.ok("openstack", "image", "show", all)), []byte("cheap,fast")) {
		t.Fatalf("openstack image show has no stores: %v", shown)
	}
}
