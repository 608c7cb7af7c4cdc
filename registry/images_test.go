package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/testenv"
)

// scoped returns a principal scoped to the project the user has a role on.
func (s *secured) scoped(t *testing.T, user, project string) auth.Principal {
	t.Helper()
	ctx := context.Background()
	u, err := s.id.UserByName(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.id.ProjectByName(ctx, project)
	roles, _ := s.id.RolesOn(ctx, u.ID, p.ID)
	admin := false
	for _, r := range roles {
		admin = admin || r == auth.RoleAdmin
	}
	return auth.Principal{UserID: u.ID, UserName: user, Scoped: true, ProjectID: p.ID, ScopedRoles: roles, Admin: admin}
}

// TestImageRulesOnRegistryReads: an image made through the catalog is pulled through the
// Registry API under the image's visibility, membership and deactivation, and deleting its
// manifest deletes the image.
func TestImageRulesOnRegistryReads(t *testing.T) {
	s := newSecured(t)
	ctx := context.Background()
	memberA := s.scoped(t, "member-a", "a")
	name, format, bare := "Golden", "raw", "bare"
	img, err := s.catalog.Create(ctx, memberA, catalog.NewImage{Name: &name, DiskFormat: &format, ContainerFormat: &bare})
	if err != nil {
		t.Fatal(err)
	}
	disk := bytes.Repeat([]byte("disk"), 5000)
	img, err = s.catalog.Upload(ctx, memberA, img.ID, bytes.NewReader(disk), int64(len(disk)))
	if err != nil {
		t.Fatal(err)
	}
	if img.Repository != "a/golden" {
		t.Fatalf("repository %q", img.Repository)
	}
	pull := func(user string) (*http.Response, []byte) {
		return s.do("GET", "/v2/a/golden/manifests/"+img.ID, nil, append(s.as(user), "Accept", v1.MediaTypeImageIndex)...)
	}
	diskBlob := func(user string) *http.Response {
		r, _ := s.do("GET", "/v2/a/golden/blobs/sha256:"+*img.HashValue, nil, s.as(user)...)
		return r
	}
	for user, want := range map[string]int{"member-a": 200, "reader-a": 200, "member-b": 403, "admin": 200} {
		if r, _ := pull(user); r.StatusCode != want {
			t.Errorf("pull as %s: %d, want %d", user, r.StatusCode, want)
		}
	}
	r, body := pull("member-a")
	var idx v1.Index
	json.Unmarshal(body, &idx)
	if r.Header.Get("Content-Type") != v1.MediaTypeImageIndex || len(idx.Manifests) != 2 {
		t.Fatalf("index: %s", body)
	}
	if r := diskBlob("member-a"); r.StatusCode != 200 {
		t.Fatalf("disk blob: %d", r.StatusCode)
	}
	// Shared with b and accepted: b pulls from a's repository.
	if _, err := s.catalog.AddMember(ctx, memberA, img.ID, s.scoped(t, "member-b", "b").ProjectID); err != nil {
		t.Fatal(err)
	}
	if r, _ := pull("member-b"); r.StatusCode != 200 {
		t.Fatalf("member project pull: %d", r.StatusCode)
	}
	if r := diskBlob("member-b"); r.StatusCode != 200 {
		t.Fatalf("member project blob: %d", r.StatusCode)
	}
	// Deactivated: only admins read it.
	if err := s.catalog.Deactivate(ctx, memberA, img.ID); err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]int{"member-a": 403, "member-b": 403, "admin": 200} {
		r, body := pull(user)
		if r.StatusCode != want {
			t.Errorf("pull of deactivated image as %s: %d, want %d", user, r.StatusCode, want)
		}
		if want == 403 && !bytes.Contains(body, []byte("DENIED")) {
			t.Errorf("deactivated refusal body: %s", body)
		}
		if r := diskBlob(user); r.StatusCode != want {
			t.Errorf("blob of deactivated image as %s: %d, want %d", user, r.StatusCode, want)
		}
	}
	if err := s.catalog.Reactivate(ctx, memberA, img.ID); err != nil {
		t.Fatal(err)
	}
	// Deleting the manifest through the registry deletes the image.
	r, body = s.do("DELETE", "/v2/a/golden/manifests/"+img.Reference, nil, s.as("member-a")...)
	if r.StatusCode != 202 {
		t.Fatalf("delete: %d %s", r.StatusCode, body)
	}
	got, err := s.catalog.Get(ctx, s.scoped(t, "admin", "admin"), img.ID)
	if err != nil || got.Status != catalog.StatusDeleted {
		t.Fatalf("image after registry delete: %+v %v", got.Status, err)
	}
	if r, _ := pull("admin"); r.StatusCode != 404 {
		t.Fatalf("pull after delete: %d", r.StatusCode)
	}
}

// pushDiskArtifact pushes file as the one layer of a disk artifact (titled with its file
// name, as oras does) to repo, under ref (a tag, or the digest the manifest will have when
// ref is "@"; use the manifest URL with that digest).
func (s *secured) pushDiskArtifact(repo, ref, file string, hdr []string) (*http.Response, []byte) {
	disk, _ := os.ReadFile(file)
	ld := s.pushBlobAs(repo, disk, hdr)
	cd := s.pushBlobAs(repo, []byte("{}"), hdr)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.disk","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d,"annotations":{"org.opencontainers.image.title":%q}}]}`,
		cd, ld, len(disk), filepath.Base(file))
	if ref == "@" {
		ref = digest.FromString(m).String()
	}
	return s.do("PUT", "/v2/"+repo+"/manifests/"+ref, []byte(m), append(hdr, "Content-Type", "application/vnd.oci.image.manifest.v1+json")...)
}

// TestPushedImageNames: a pushed disk's image is named after the repository and tag it was
// pushed to (the digest for a push by digest), not its file, so one file pushed to two
// repositories gives two images told apart by name.
func TestPushedImageNames(t *testing.T) {
	s := newSecured(t)
	good, _ := qcow2Pair(t, "16M")
	hdr := s.as("member-a")
	for _, p := range []struct{ repo, ref string }{{"a/one", "v1"}, {"a/two", "v1"}, {"a/three", "@"}} {
		if r, body := s.pushDiskArtifact(p.repo, p.ref, good, hdr); r.StatusCode != 201 {
			t.Fatalf("push to %s: %d %s", p.repo, r.StatusCode, body)
		}
	}
	names := map[string]string{}
	for _, img := range s.images(t) {
		names[img.Repository] = *img.Name
	}
	three := names["a/three"]
	if len(names) != 3 || names["a/one"] != "a/one:v1" || names["a/two"] != "a/two:v1" ||
		!strings.HasPrefix(three, "a/three@sha256:") || len(three) != len("a/three@sha256:")+64 {
		t.Fatalf("image names by repository: %v; want a/one:v1, a/two:v1, a/three@<digest>", names)
	}
	for _, img := range s.images(t) {
		s.requireResolves(t, catalog.OCIReference(img), hdr)
	}
}

// requireResolves checks that ref (`repo:tag` or `repo@digest`) is a manifest the registry
// serves.
func (s *secured) requireResolves(t *testing.T, ref string, hdr []string) {
	t.Helper()
	repo, tag, ok := strings.Cut(ref, "@")
	if !ok {
		i := strings.LastIndex(ref, ":")
		if i < 0 {
			t.Fatalf("reference %q names no tag or digest", ref)
		}
		repo, tag = ref[:i], ref[i+1:]
	}
	r, body := s.do("GET", "/v2/"+repo+"/manifests/"+tag, nil, append(hdr, "Accept", v1.MediaTypeImageIndex+","+v1.MediaTypeImageManifest)...)
	if r.StatusCode != 200 {
		t.Fatalf("GET the reference %s: %d %s", ref, r.StatusCode, body)
	}
}

// TestPushedDiskBecomesImage: a qcow2 pushed as an artifact through the Registry API is an
// image in the catalog; an unsafe one is refused with MANIFEST_INVALID naming the reason
// and never enters the catalog.
func TestPushedDiskBecomesImage(t *testing.T) {
	s := newSecured(t)
	ctx := context.Background()
	good, bad := qcow2Pair(t, "32M")
	hdr := s.as("member-a")
	push := func(file, tag string) (*http.Response, []byte) { return s.pushDiskArtifact("a/disks", tag, file, hdr) }
	r, body := push(bad, "bad")
	if r.StatusCode != 400 || !bytes.Contains(body, []byte("MANIFEST_INVALID")) || !bytes.Contains(body, []byte("backing")) {
		t.Fatalf("unsafe disk push: %d %s", r.StatusCode, body)
	}
	if r, _ := s.do("GET", "/v2/a/disks/manifests/bad", nil, hdr...); r.StatusCode != 404 {
		t.Fatalf("refused manifest stored: %d", r.StatusCode)
	}
	r, body = push(good, "good")
	if r.StatusCode != 201 {
		t.Fatalf("disk push: %d %s", r.StatusCode, body)
	}
	imgs, _, err := s.catalog.List(ctx, s.scoped(t, "member-a", "a"), catalog.ListOptions{})
	if err != nil || len(imgs) != 1 {
		t.Fatalf("images after pushes: %d %v", len(imgs), err)
	}
	img := imgs[0]
	info, _ := os.Stat(good)
	if img.Status != catalog.StatusActive || *img.DiskFormat != "qcow2" || *img.Size != info.Size() ||
		*img.VirtualSize != 32<<20 || *img.Name != "a/disks:good" || img.Owner != s.scoped(t, "member-a", "a").ProjectID {
		t.Fatalf("pushed image: %+v", img)
	}
	// The Image API side downloads the same bytes.
	_, rd, _, err := s.catalog.Open(ctx, s.scoped(t, "member-a", "a"), img.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rd)
	rd.Close()
	want, _ := os.ReadFile(good)
	if !bytes.Equal(got, want) {
		t.Fatal("downloaded disk differs")
	}
	// The containerDisk view: <repo>:<image id> is an index with a runnable linux/amd64
	// image whose layer holds disk/disk.img, beside the pushed artifact.
	r, body = s.do("GET", "/v2/a/disks/manifests/"+img.ID, nil, append(hdr, "Accept", v1.MediaTypeImageIndex)...)
	var idx v1.Index
	json.Unmarshal(body, &idx)
	if r.StatusCode != 200 || len(idx.Manifests) != 2 || idx.Manifests[0].Platform == nil {
		t.Fatalf("containerDisk view: %d %s", r.StatusCode, body)
	}
	_, body = s.do("GET", "/v2/a/disks/manifests/"+idx.Manifests[0].Digest.String(), nil, hdr...)
	var cd v1.Manifest
	json.Unmarshal(body, &cd)
	_, layer := s.do("GET", "/v2/a/disks/blobs/"+cd.Layers[0].Digest.String(), nil, hdr...)
	tr := tar.NewReader(bytes.NewReader(layer))
	tr.Next()
	if h, err := tr.Next(); err != nil || h.Name != "disk/disk.img" {
		t.Fatalf("containerDisk layer: %v %v", h, err)
	}
	inTar, _ := io.ReadAll(tr)
	if !bytes.Equal(inTar, want) {
		t.Fatal("containerDisk disk differs from the pushed one")
	}
	// Deleting the pushed manifest deletes the image and its view.
	r, _ = s.do("DELETE", "/v2/a/disks/manifests/"+idx.Manifests[1].Digest.String(), nil, hdr...)
	if r.StatusCode != 202 {
		t.Fatalf("delete: %d", r.StatusCode)
	}
	if _, err := s.catalog.Get(ctx, s.scoped(t, "member-a", "a"), img.ID); err == nil {
		t.Fatal("image survives the delete of its manifest")
	}
	if r, _ := s.do("GET", "/v2/a/disks/manifests/"+img.ID, nil, hdr...); r.StatusCode != 404 {
		t.Fatalf("containerDisk view after delete: %d", r.StatusCode)
	}
}

// containerDiskLayer makes an uncompressed tar layer holding disk/ and disk/disk.img.
func containerDiskLayer(t *testing.T, disk []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "disk/", Mode: 0o555, Uid: 107, Gid: 107})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "disk/disk.img", Mode: 0o444, Uid: 107, Gid: 107, Size: int64(len(disk))})
	tw.Write(disk)
	tw.Close()
	return buf.Bytes()
}

// TestPushedContainerDisk: a containerDisk pushed with a safe qcow2 is an image whose
// download is the disk file; one with an unsafe disk is refused.
func TestPushedContainerDisk(t *testing.T) {
	s := newSecured(t)
	ctx := context.Background()
	good, bad := qcow2Pair(t, "16M")
	hdr := s.as("member-a")
	push := func(file, tag string) (*http.Response, []byte) {
		disk, _ := os.ReadFile(file)
		layer := containerDiskLayer(t, disk)
		ld := s.pushBlobAs("a/kubevirt", layer, hdr)
		cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, ld))
		cd := s.pushBlobAs("a/kubevirt", cfg, hdr)
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
			cd, len(cfg), ld, len(layer))
		return s.do("PUT", "/v2/a/kubevirt/manifests/"+tag, []byte(m), append(hdr, "Content-Type", "application/vnd.oci.image.manifest.v1+json")...)
	}
	if r, body := push(bad, "bad"); r.StatusCode != 400 || !bytes.Contains(body, []byte("MANIFEST_INVALID")) {
		t.Fatalf("unsafe containerDisk: %d %s", r.StatusCode, body)
	}
	if r, body := push(good, "good"); r.StatusCode != 201 {
		t.Fatalf("containerDisk push: %d %s", r.StatusCode, body)
	}
	pr := s.scoped(t, "member-a", "a")
	imgs, _, err := s.catalog.List(ctx, pr, catalog.ListOptions{})
	if err != nil || len(imgs) != 1 || *imgs[0].DiskFormat != "qcow2" || *imgs[0].VirtualSize != 16<<20 {
		t.Fatalf("images: %+v %v", imgs, err)
	}
	_, rd, n, err := s.catalog.Open(ctx, pr, imgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rd)
	rd.Close()
	want, _ := os.ReadFile(good)
	if n != int64(len(want)) || !bytes.Equal(got, want) {
		t.Fatal("download of a pushed containerDisk is not its disk file")
	}
}

// TestSnapshotsAreReferrersOfTheirBase: a snapshot's artifact names its base image as
// subject, so the referrers API of the golden image lists it (to those who may see it).
func TestSnapshotsAreReferrersOfTheirBase(t *testing.T) {
	s := newSecured(t)
	ctx := context.Background()
	admin, memberB := s.scoped(t, "admin", "admin"), s.scoped(t, "member-b", "b")
	raw, bare := "raw", "bare"
	create := func(pr auth.Principal, name string, props map[string]string, data []byte) catalog.Image {
		t.Helper()
		img, err := s.catalog.Create(ctx, pr, catalog.NewImage{Name: &name, DiskFormat: &raw, ContainerFormat: &bare, Properties: props})
		if err != nil {
			t.Fatal(err)
		}
		img, err = s.catalog.Upload(ctx, pr, img.ID, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	golden := create(admin, "golden", nil, bytes.Repeat([]byte("g"), 8192))
	if _, err := s.catalog.Update(ctx, admin, golden.ID, []catalog.Change{{Op: "replace", Path: "visibility", Value: json.RawMessage(`"public"`)}}); err != nil {
		t.Fatal(err)
	}
	snap := create(memberB, "snap of golden", map[string]string{"image_type": "snapshot", "base_image_ref": golden.ID, "instance_uuid": "4f0cf4f0-0000-4000-8000-000000000001"},
		bytes.Repeat([]byte("s"), 8192))
	if snap.Referrer == "" {
		t.Fatal("snapshot not linked to its base")
	}
	referrers := func(user string) []v1.Descriptor {
		r, body := s.do("GET", "/v2/"+golden.Repository+"/referrers/"+golden.Reference, nil, s.as(user)...)
		if r.StatusCode != 200 {
			t.Fatalf("referrers as %s: %d %s", user, r.StatusCode, body)
		}
		var idx v1.Index
		json.Unmarshal(body, &idx)
		return idx.Manifests
	}
	if got := referrers("member-b"); len(got) != 1 || got[0].ArtifactType != "application/vnd.xloud.vm-image.v1" || got[0].Annotations["io.xloud.image.id"] != snap.ID {
		t.Fatalf("referrers of the golden image as the snapshot's project: %+v", got)
	}
	if got := referrers("member-a"); len(got) != 0 {
		t.Fatalf("another project sees the snapshot: %+v", got)
	}
	if got := referrers("admin"); len(got) != 1 {
		t.Fatalf("admin: %+v", got)
	}
	// The snapshot's own artifact carries the subject too.
	_, idxBytes, _ := s.store.GetManifest(ctx, snap.Repository, digest.Digest(snap.Reference))
	var idx v1.Index
	json.Unmarshal(idxBytes, &idx)
	var art v1.Manifest
	for _, m := range idx.Manifests {
		if m.ArtifactType != "" {
			_, b, _ := s.store.GetManifest(ctx, snap.Repository, m.Digest)
			json.Unmarshal(b, &art)
		}
	}
	if art.Subject == nil || art.Subject.Digest.String() != golden.Reference {
		t.Fatalf("snapshot artifact subject: %+v", art.Subject)
	}
	// Deleting the snapshot removes it from the base's referrers.
	if err := s.catalog.Delete(ctx, memberB, snap.ID); err != nil {
		t.Fatal(err)
	}
	if got := referrers("admin"); len(got) != 0 {
		t.Fatalf("referrers after the snapshot was deleted: %+v", got)
	}
}

// qcow2Pair makes, with qemu-img, a safe qcow2 and an unsafe one (with a backing file) of
// the virtual size given.
func qcow2Pair(t *testing.T, size string) (good, bad string) {
	t.Helper()
	dir := t.TempDir()
	qemu := testenv.RequireTool(t, "qemu-img")
	good, base, bad := filepath.Join(dir, "good.qcow2"), filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "bad.qcow2")
	for _, args := range [][]string{
		{"create", "-f", "qcow2", good, size},
		{"create", "-f", "qcow2", base, size},
		{"create", "-f", "qcow2", "-F", "qcow2", "-b", base, bad, size},
	} {
		if out, err := exec.Command(qemu, args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	return good, bad
}
