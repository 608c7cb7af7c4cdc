package registry

import (
	"bytes"
	"context"
	"testing"

	"github.com/xloud/xloud-image/auth"
)

// TestPushByProjectID: a project has one namespace, its name. A push to a repository named
// by the project's id is refused with NAME_INVALID naming the path under the name, and
// stores nothing; a caller without rights on the project is refused as before, without
// learning the name; pulls of the id form are not refused for their name; a project whose
// name is no path component keeps its id as its namespace.
func TestPushByProjectID(t *testing.T) {
	s := newSecured(t)
	ctx := context.Background()
	a, err := s.id.ProjectByName(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	member := s.as("member-a")
	r, body := s.do("POST", "/v2/"+a.ID+"/x/blobs/uploads/", nil, member...)
	if r.StatusCode != 400 || !bytes.Contains(body, []byte("NAME_INVALID")) || !bytes.Contains(body, []byte("push to a/x")) {
		t.Fatalf("upload to %s/x: %d %s; want 400 NAME_INVALID naming a/x", a.ID, r.StatusCode, body)
	}
	cd := s.pushBlobAs("a/x", []byte("{}"), member)
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` + cd + `","size":2},"layers":[]}`)
	r, body = s.do("PUT", "/v2/"+a.ID+"/x/manifests/v1", m, append(member, "Content-Type", "application/vnd.oci.image.manifest.v1+json")...)
	if r.StatusCode != 400 || !bytes.Contains(body, []byte("NAME_INVALID")) || !bytes.Contains(body, []byte("push to a/x")) {
		t.Fatalf("manifest to %s/x: %d %s", a.ID, r.StatusCode, body)
	}
	if r, body := s.do("GET", "/v2/"+a.ID+"/x/tags/list", nil, member...); r.StatusCode != 404 || !bytes.Contains(body, []byte("NAME_UNKNOWN")) {
		t.Fatalf("the id form after refused pushes: %d %s; want NAME_UNKNOWN", r.StatusCode, body)
	}
	// A member of another project is refused as before, and not told a's name.
	r, body = s.do("POST", "/v2/"+a.ID+"/x/blobs/uploads/", nil, s.as("member-b")...)
	// (The refusal may echo the id form, a.ID+"/x", which ends in "a/x" for some ids.)
	if r.StatusCode != 403 || bytes.Contains(bytes.ReplaceAll(body, []byte(a.ID+"/x"), nil), []byte("a/x")) {
		t.Fatalf("member-b upload to %s/x: %d %s; want 403 without the name", a.ID, r.StatusCode, body)
	}
	// The name form takes the push.
	r, body = s.do("PUT", "/v2/a/x/manifests/v1", m, append(member, "Content-Type", "application/vnd.oci.image.manifest.v1+json")...)
	s.expect(r, body, 201, "")

	// A name that is no path component: the id is the namespace.
	ops, err := s.id.CreateProject(ctx, auth.Project{Name: "Ops Team", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	s.pushBlobAs(ops.ID+"/x", []byte("{}"), s.as("admin"))
}
