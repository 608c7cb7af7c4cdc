package imageapi_test

import (
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"

	"github.com/xloud/xloud-image/imageapi"
)

// TestOCIReference: an image shows where the registry serves it (xloud_oci_reference) once
// it has data, under the registry's port on the host the request came to, or the host
// --public-url names; the reference resolves in the store, and no client may set it.
func TestOCIReference(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create("member-a", map[string]any{"name": "cirros", "disk_format": "raw", "container_format": "bare"})
	if img := e.show(id); img["xloud_oci_reference"] != nil {
		t.Fatalf("queued image shows a reference: %v", img["xloud_oci_reference"])
	}
	e.upload("member-a", id, rawImage(4096))
	u, _ := url.Parse(e.srv.URL)
	want := u.Hostname() + ":5000/a/cirros:" + id
	img := e.show(id)
	if img["xloud_oci_reference"] != want {
		t.Fatalf("xloud_oci_reference %v, want %s", img["xloud_oci_reference"], want)
	}
	if d, err := e.store.ResolveTag(ctx, "a/cirros", id); err != nil || d == "" {
		t.Fatalf("the reference's tag %s does not resolve in a/cirros: %v", id, err)
	}
	list := e.do("member-a", "GET", "/v2/images", nil).json(t)["images"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["xloud_oci_reference"] != want {
		t.Fatalf("listed: %v", list)
	}
	for _, op := range []map[string]any{
		{"op": "add", "path": "/xloud_oci_reference", "value": "evil/x:y"},
		{"op": "replace", "path": "/xloud_oci_reference", "value": "evil/x:y"},
		{"op": "remove", "path": "/xloud_oci_reference"},
	} {
		if r := e.patch("member-a", id, op); r.status != 403 {
			t.Errorf("PATCH %v: %d %s, want 403", op, r.status, r.body)
		}
	}
	if after := e.show(id); !reflect.DeepEqual(after, img) {
		t.Fatalf("refused patches changed the image:\n%v\n%v", img, after)
	}
	// With --public-url, its host is the registry's.
	pub := httptest.NewServer(imageapi.New(e.cat, nil, imageapi.Options{RegistryHost: "registry.example.com"}))
	defer pub.Close()
	e.srv = pub // the first server is closed by newEnv's cleanup
	if got := e.show(id)["xloud_oci_reference"]; got != "registry.example.com/a/cirros:"+id {
		t.Fatalf("with a registry host: %v", got)
	}
}
