package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/signing"
)

// TestAttestationFollowsImage checks that the server's disk-inspection attestation (the
// manifest under the image's .att tag, whose subject is the image's index) is read exactly as
// the image is: a private image's by its project, hidden from others as if missing; a public
// image's by every signed-in caller. Its envelope verifies with the server key.
func TestAttestationFollowsImage(t *testing.T) {
	s := newSecured(t)
	ctx := context.Background()
	key, err := signing.LoadServerKey(ctx, s.testRegistry.store.Meta())
	if err != nil {
		t.Fatal(err)
	}
	s.catalog.Attester = key
	memberA, admin := s.scoped(t, "member-a", "a"), s.scoped(t, "admin", "admin")
	name, raw, bare := "Attested", "raw", "bare"
	upload := func(pr auth.Principal, vis catalog.Visibility, disk []byte) catalog.Image {
		img, err := s.catalog.Create(ctx, pr, catalog.NewImage{Name: &name, DiskFormat: &raw, ContainerFormat: &bare, Owner: memberA.ProjectID, Visibility: vis})
		if err != nil {
			t.Fatal(err)
		}
		if img, err = s.catalog.Upload(ctx, pr, img.ID, bytes.NewReader(disk), int64(len(disk))); err != nil {
			t.Fatal(err)
		}
		return img
	}
	private := upload(memberA, catalog.VisibilityPrivate, bytes.Repeat([]byte("priv"), 4096))
	public := upload(admin, catalog.VisibilityPublic, bytes.Repeat([]byte("pub!"), 4096))
	for _, c := range []struct {
		img    catalog.Image
		user   string
		status int
		code   Code
	}{
		{private, "member-a", 200, ""},
		{private, "reader-a", 200, ""},
		{private, "member-b", 404, CodeManifestUnknown},
		{private, "", 401, CodeUnauthorized},
		{public, "member-b", 200, ""},
		{public, "reader-a", 200, ""},
	} {
		tag := catalog.AttestationTag(digest.Digest(c.img.Reference))
		resp, body := s.do("GET", "/v2/"+c.img.Repository+"/manifests/"+tag, nil, s.as(c.user)...)
		s.expect(resp, body, c.status, c.code)
		if c.status != 200 {
			continue
		}
		var m v1.Manifest
		if err := json.Unmarshal(body, &m); err != nil || len(m.Layers) != 1 || m.Subject == nil ||
			m.Subject.Digest.String() != c.img.Reference || m.Layers[0].Annotations["predicateType"] != catalog.PredicateDiskInspection {
			t.Fatalf("attestation manifest of %s: %s", c.img.ID, body)
		}
		resp, env := s.do("GET", "/v2/"+c.img.Repository+"/blobs/"+m.Layers[0].Digest.String(), nil, s.as(c.user)...)
		s.expect(resp, env, 200, "")
		typ, payload, err := signing.VerifyDSSE(key.Public(), env)
		if err != nil || typ != "application/vnd.in-toto+json" || !bytes.Contains(payload, []byte(c.img.ID)) {
			t.Fatalf("envelope of %s: %v %q %s", c.img.ID, err, typ, payload)
		}
	}
}
