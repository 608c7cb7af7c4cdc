package catalog_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage"
)

var ctx = context.Background()

// world is a catalog with projects a and b, and principals scoped to them.
type world struct {
	cat     *catalog.Catalog
	store   *storage.Store
	id      *auth.Identity
	project map[string]string
	as      map[string]auth.Principal
}

func newWorld(t *testing.T) *world { return newWorldOn(t, "") }

// newWorldOn builds the world on the embedded store, or on Redis when redisURL is set.
func newWorldOn(t *testing.T, redisURL string) *world {
	t.Helper()
	return newWorldWith(t, testenv.OpenStore(t, redisURL))
}

// newWorldWith builds the world over store.
func newWorldWith(t *testing.T, store *storage.Store) *world {
	t.Helper()
	id := auth.NewIdentity(store.Meta())
	w := &world{store: store, id: id, project: map[string]string{}, as: map[string]auth.Principal{}}
	for _, p := range []string{"a", "b"} {
		proj, err := id.CreateProject(ctx, auth.Project{Name: p, Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		w.project[p] = proj.ID
	}
	for _, u := range []struct {
		name, project string
		role          auth.Role
	}{{"member-a", "a", auth.RoleMember}, {"reader-a", "a", auth.RoleReader}, {"member-b", "b", auth.RoleMember}} {
		user, _ := id.CreateUser(ctx, auth.User{Name: u.name, Enabled: true}, "pw")
		id.Grant(ctx, user.ID, w.project[u.project], u.role)
		w.as[u.name] = auth.Principal{UserID: user.ID, UserName: u.name, Scoped: true,
			ProjectID: w.project[u.project], ScopedRoles: []auth.Role{u.role}}
	}
	w.as["admin"] = auth.Principal{UserID: "admin", Admin: true, Scoped: true, ProjectID: w.project["a"], ScopedRoles: []auth.Role{auth.RoleAdmin}}
	w.cat = catalog.New(store, &auth.Policy{Directory: id})
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w.cat.Now = func() time.Time { clock = clock.Add(time.Second); return clock }
	return w
}

func sp(s string) *string { return &s }

func (w *world) create(t *testing.T, who, name, format string) catalog.Image {
	t.Helper()
	img, err := w.cat.Create(ctx, w.as[who], catalog.NewImage{Name: sp(name), DiskFormat: sp(format), ContainerFormat: sp("bare")})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// qemuImage makes a disk image with qemu-img and returns its bytes.
func qemuImage(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := testenv.RequireTool(t, "qemu-img")
	path := filepath.Join(t.TempDir(), "disk")
	cmd := exec.Command(bin, append(append([]string{"create"}, args[:len(args)-1]...), path, args[len(args)-1])...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUploadPublishesVMImageIndex(t *testing.T) {
	qcow := qemuImage(t, "-f", "qcow2", "64M")
	for _, known := range []bool{true, false} {
		w := newWorld(t)
		img := w.create(t, "member-a", "Ubuntu 24.04 LTS", "qcow2")
		if img.Status != catalog.StatusQueued || img.Visibility != catalog.VisibilityShared || img.Owner != w.project["a"] {
			t.Fatalf("new image: %+v", img)
		}
		data := qcow
		size := int64(-1)
		if known {
			size = int64(len(data))
		}
		got, err := w.cat.Upload(ctx, w.as["member-a"], img.ID, bytes.NewReader(data), size)
		if err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum(data)
		sha := sha256.Sum256(data)
		if got.Status != catalog.StatusActive || *got.Size != int64(len(data)) || *got.Checksum != hex.EncodeToString(sum[:]) ||
			*got.HashAlgo != "sha256" || *got.HashValue != hex.EncodeToString(sha[:]) || got.Repository != "a/ubuntu-24-04-lts" ||
			got.VirtualSize == nil || *got.VirtualSize != 64<<20 {
			t.Fatalf("uploaded image: %+v", got)
		}
		// The registry side: tag id and latest point at the index.
		for _, tag := range []string{img.ID, "latest"} {
			d, err := w.store.ResolveTag(ctx, got.Repository, tag)
			if err != nil || d.String() != got.Reference {
				t.Fatalf("tag %s: %s %v", tag, d, err)
			}
		}
		_, idxBytes, _ := w.store.GetManifest(ctx, got.Repository, digest.Digest(got.Reference))
		var idx v1.Index
		json.Unmarshal(idxBytes, &idx)
		if len(idx.Manifests) != 2 || idx.Manifests[0].Platform == nil || idx.Manifests[0].Platform.Architecture != "amd64" ||
			idx.Manifests[1].ArtifactType != "application/vnd.xloud.vm-image.v1" {
			t.Fatalf("index: %s", idxBytes)
		}
		// containerDisk layer: a tar with disk/disk.img = the data, uid 107.
		_, cdBytes, _ := w.store.GetManifest(ctx, got.Repository, idx.Manifests[0].Digest)
		var cd v1.Manifest
		json.Unmarshal(cdBytes, &cd)
		f, n, err := w.store.OpenBlob(ctx, got.Repository, cd.Layers[0].Digest)
		if err != nil || n != cd.Layers[0].Size {
			t.Fatalf("layer: %d %v", n, err)
		}
		layer, _ := io.ReadAll(f)
		f.Close()
		if digest.FromBytes(layer) != cd.Layers[0].Digest {
			t.Fatal("containerDisk layer bytes do not match its digest")
		}
		tr := tar.NewReader(bytes.NewReader(layer))
		hdr, _ := tr.Next()
		if hdr.Name != "disk/" || hdr.Uid != 107 {
			t.Fatalf("first entry %+v", hdr)
		}
		hdr, _ = tr.Next()
		content, _ := io.ReadAll(tr)
		if hdr.Name != "disk/disk.img" || hdr.Gid != 107 || !bytes.Equal(content, data) {
			t.Fatalf("disk entry %+v, %d bytes", hdr, len(content))
		}
		if _, err := tr.Next(); err != io.EOF {
			t.Fatalf("tar does not end cleanly: %v", err)
		}
		// The artifact's layer is the disk itself, titled.
		_, artBytes, _ := w.store.GetManifest(ctx, got.Repository, idx.Manifests[1].Digest)
		var art v1.Manifest
		json.Unmarshal(artBytes, &art)
		if art.Layers[0].Digest.Encoded() != *got.HashValue || art.Layers[0].MediaType != "application/vnd.diskimage.qcow2" ||
			art.Layers[0].Annotations[v1.AnnotationTitle] != "ubuntu-24-04-lts.qcow2" {
			t.Fatalf("artifact: %s", artBytes)
		}
		// Download through the catalog.
		_, rd, n, err := w.cat.Open(ctx, w.as["member-a"], img.ID)
		if err != nil || n != int64(len(data)) {
			t.Fatal(err)
		}
		back, _ := io.ReadAll(rd)
		rd.Close()
		if !bytes.Equal(back, data) {
			t.Fatal("download differs")
		}
		// Uploading twice is a conflict.
		if _, err := w.cat.Upload(ctx, w.as["member-a"], img.ID, bytes.NewReader(data), size); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("second upload: %v", err)
		}
	}
}

func TestFailedUploadReturnsToQueued(t *testing.T) {
	w := newWorld(t)
	img := w.create(t, "member-a", "x", "raw")
	_, err := w.cat.Upload(ctx, w.as["member-a"], img.ID, bytes.NewReader(make([]byte, 100)), 200)
	if !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("short upload: %v", err)
	}
	_, err = w.cat.Upload(ctx, w.as["member-a"], img.ID, bytes.NewReader(make([]byte, 300)), 200)
	if !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("long upload: %v", err)
	}
	got, _ := w.cat.Get(ctx, w.as["member-a"], img.ID)
	if got.Status != catalog.StatusQueued || got.Size != nil {
		t.Fatalf("after failed uploads: %+v", got)
	}
	if _, err := w.cat.Upload(ctx, w.as["reader-a"], img.ID, bytes.NewReader(nil), 0); !errors.Is(err, catalog.ErrForbidden) {
		t.Fatalf("reader upload: %v", err)
	}
	if _, err := w.cat.Upload(ctx, w.as["member-b"], img.ID, bytes.NewReader(nil), 0); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("stranger upload: %v", err)
	}
}

func TestVisibilityMembersAndList(t *testing.T) {
	redisURL := testenv.StartRedis(t)
	for _, backend := range []string{"", redisURL} {
		testVisibilityMembersAndList(t, newWorldOn(t, backend))
	}
}

func testVisibilityMembersAndList(t *testing.T, w *world) {
	img := w.create(t, "member-a", "shared one", "raw")
	priv := w.create(t, "member-a", "private one", "raw")
	if _, err := w.cat.Update(ctx, w.as["member-a"], priv.ID, []catalog.Change{{Op: "replace", Path: "visibility", Value: json.RawMessage(`"private"`)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cat.Get(ctx, w.as["member-b"], img.ID); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("stranger sees shared image: %v", err)
	}
	if _, err := w.cat.AddMember(ctx, w.as["member-a"], img.ID, w.project["b"]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cat.AddMember(ctx, w.as["member-a"], priv.ID, w.project["b"]); !errors.Is(err, catalog.ErrForbidden) {
		t.Fatalf("member on private image: %v", err)
	}
	if _, err := w.cat.Get(ctx, w.as["member-b"], img.ID); err != nil {
		t.Fatalf("pending member cannot read: %v", err)
	}
	list := func(who string, f catalog.Filter) []string {
		imgs, _, err := w.cat.List(ctx, w.as[who], catalog.ListOptions{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, i := range imgs {
			names = append(names, *i.Name)
		}
		return names
	}
	if got := list("member-b", catalog.Filter{}); len(got) != 0 {
		t.Fatalf("pending member lists %v", got)
	}
	if got := list("member-b", catalog.Filter{MemberStatus: "pending"}); len(got) != 1 {
		t.Fatalf("member_status=pending lists %v", got)
	}
	if _, err := w.cat.SetMemberStatus(ctx, w.as["member-a"], img.ID, w.project["b"], "accepted"); !errors.Is(err, catalog.ErrForbidden) {
		t.Fatalf("owner accepting for the member: %v", err)
	}
	if _, err := w.cat.SetMemberStatus(ctx, w.as["member-b"], img.ID, w.project["b"], "accepted"); err != nil {
		t.Fatal(err)
	}
	if got := list("member-b", catalog.Filter{}); len(got) != 1 || got[0] != "shared one" {
		t.Fatalf("accepted member lists %v", got)
	}
	if got := list("member-a", catalog.Filter{}); len(got) != 2 || got[0] != "private one" {
		t.Fatalf("owner lists %v (newest first)", got)
	}
	// Only admins make images public.
	pub := []catalog.Change{{Op: "replace", Path: "visibility", Value: json.RawMessage(`"public"`)}}
	if _, err := w.cat.Update(ctx, w.as["member-a"], img.ID, pub); !errors.Is(err, catalog.ErrForbidden) {
		t.Fatalf("member publicizing: %v", err)
	}
	if _, err := w.cat.Update(ctx, w.as["admin"], priv.ID, pub); err != nil {
		t.Fatal(err)
	}
	if got := list("member-b", catalog.Filter{Visibility: "public"}); len(got) != 1 || got[0] != "private one" {
		t.Fatalf("public list %v", got)
	}
	// Protected images cannot be deleted.
	prot := []catalog.Change{{Op: "replace", Path: "protected", Value: json.RawMessage(`true`)}}
	if _, err := w.cat.Update(ctx, w.as["member-a"], img.ID, prot); err != nil {
		t.Fatal(err)
	}
	if err := w.cat.Delete(ctx, w.as["member-a"], img.ID); !errors.Is(err, catalog.ErrForbidden) {
		t.Fatalf("delete protected: %v", err)
	}
}

func TestPatchRules(t *testing.T) {
	w := newWorld(t)
	img := w.create(t, "member-a", "p", "raw")
	cases := []struct {
		ch   catalog.Change
		want error
	}{
		{catalog.Change{Op: "replace", Path: "status", Value: json.RawMessage(`"active"`)}, catalog.ErrForbidden},
		{catalog.Change{Op: "add", Path: "os_glance_x", Value: json.RawMessage(`"1"`)}, catalog.ErrForbidden},
		{catalog.Change{Op: "remove", Path: "name"}, catalog.ErrForbidden},
		{catalog.Change{Op: "replace", Path: "nothere", Value: json.RawMessage(`"1"`)}, catalog.ErrConflict},
		{catalog.Change{Op: "remove", Path: "nothere"}, catalog.ErrConflict},
		{catalog.Change{Op: "add", Path: "k", Value: json.RawMessage(`1`)}, catalog.ErrInvalid},
		{catalog.Change{Op: "replace", Path: "min_disk", Value: json.RawMessage(`-1`)}, catalog.ErrInvalid},
		{catalog.Change{Op: "replace", Path: "owner", Value: json.RawMessage(`"x"`)}, catalog.ErrForbidden},
		{catalog.Change{Op: "move", Path: "name", Value: json.RawMessage(`"x"`)}, catalog.ErrInvalid},
		{catalog.Change{Op: "add", Path: "k", Value: json.RawMessage(`"v"`)}, nil},
		{catalog.Change{Op: "add", Path: "k", Value: json.RawMessage(`"v2"`)}, nil},
		{catalog.Change{Op: "replace", Path: "name", Value: json.RawMessage(`null`)}, nil},
	}
	for _, c := range cases {
		_, err := w.cat.Update(ctx, w.as["member-a"], img.ID, []catalog.Change{c.ch})
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%+v: %v, want %v", c.ch, err, c.want)
		}
	}
	got, _ := w.cat.Get(ctx, w.as["member-a"], img.ID)
	if got.Properties["k"] != "v2" || got.Name != nil {
		t.Fatalf("after patches: %+v", got)
	}
}

// TestUnsafeOrMismatchedDataIsRefused: data that is not what disk_format says, or that fails
// the safety checks, is ErrBadData and leaves the image queued with nothing stored.
func TestUnsafeOrMismatchedDataIsRefused(t *testing.T) {
	w := newWorld(t)
	base := filepath.Join(t.TempDir(), "base.qcow2")
	if out, err := exec.Command(testenv.RequireTool(t, "qemu-img"), "create", "-f", "qcow2", base, "16M").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	withBacking := qemuImage(t, "-f", "qcow2", "-F", "qcow2", "-b", base, "16M")
	raw := make([]byte, 1<<20)
	rand.Read(raw)
	cases := []struct {
		name, format string
		data         []byte
	}{
		{"qcow2 with a backing file", "qcow2", withBacking},
		{"raw declared as qcow2", "qcow2", raw},
		{"qcow2 declared as raw", "raw", qemuImage(t, "-f", "qcow2", "1M")},
	}
	for _, c := range cases {
		img := w.create(t, "member-a", c.name, c.format)
		_, err := w.cat.Upload(ctx, w.as["member-a"], img.ID, bytes.NewReader(c.data), int64(len(c.data)))
		if !errors.Is(err, catalog.ErrBadData) {
			t.Errorf("%s: %v, want ErrBadData", c.name, err)
		}
		got, _ := w.cat.Get(ctx, w.as["member-a"], img.ID)
		if got.Status != catalog.StatusQueued || got.Repository != "" {
			t.Errorf("%s: image left %s in %q", c.name, got.Status, got.Repository)
		}
	}
	repos, _, _ := w.store.Repositories(ctx, "", 0)
	if len(repos) != 0 {
		t.Fatalf("refused data left repositories %v", repos)
	}
}

func TestDeleteAndPurge(t *testing.T) {
	w := newWorld(t)
	raw := make([]byte, 4096)
	older := w.create(t, "member-a", "same name", "raw")
	if _, err := w.cat.Upload(ctx, w.as["member-a"], older.ID, bytes.NewReader(raw), int64(len(raw))); err != nil {
		t.Fatal(err)
	}
	newer := w.create(t, "member-a", "same name", "raw")
	raw2 := append([]byte{1}, raw[1:]...)
	newer, err := w.cat.Upload(ctx, w.as["member-a"], newer.ID, bytes.NewReader(raw2), int64(len(raw2)))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := w.store.ResolveTag(ctx, newer.Repository, "latest"); d.String() != newer.Reference {
		t.Fatal("latest is not the newest image")
	}
	if err := w.cat.Delete(ctx, w.as["member-b"], newer.ID); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("stranger delete: %v", err)
	}
	if err := w.cat.Delete(ctx, w.as["member-a"], newer.ID); err != nil {
		t.Fatal(err)
	}
	olderImg, _ := w.cat.Get(ctx, w.as["member-a"], older.ID)
	if d, _ := w.store.ResolveTag(ctx, newer.Repository, "latest"); d.String() != olderImg.Reference {
		t.Fatalf("latest did not move back to the older image: %s", d)
	}
	if _, err := w.store.ResolveTag(ctx, newer.Repository, newer.ID); err == nil {
		t.Fatal("deleted image's tag still resolves")
	}
	if _, err := w.cat.Get(ctx, w.as["member-a"], newer.ID); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("deleted image visible: %v", err)
	}
	if got, err := w.cat.Get(ctx, w.as["admin"], newer.ID); err != nil || got.Status != catalog.StatusDeleted {
		t.Fatalf("admin view of deleted image: %v %v", got.Status, err)
	}
	// The world's clock starts at 2026-01-01.
	ids, err := w.cat.Purge(ctx, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || len(ids) != 0 {
		t.Fatalf("purge within retention: %v %v", ids, err)
	}
	ids, err = w.cat.Purge(ctx, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || len(ids) != 1 || ids[0] != newer.ID {
		t.Fatalf("purge: %v %v", ids, err)
	}
	if _, err := w.cat.Get(ctx, w.as["admin"], newer.ID); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("purged record still there: %v", err)
	}
}

// TestLatestAfterDelete: `latest` follows the newest active image of a repository as images
// leave it, on both metadata backends: deleting a middle image leaves it alone, deleting the
// newest moves it to the next newest (not the oldest), and so on down to the last one.
func TestLatestAfterDelete(t *testing.T) {
	redisURL := testenv.StartRedis(t)
	for _, backend := range []string{"", redisURL} {
		testLatestAfterDelete(t, newWorldOn(t, backend))
	}
}

func testLatestAfterDelete(t *testing.T, w *world) {
	var imgs []catalog.Image // oldest first
	for i := range 4 {
		img := w.create(t, "member-a", "series", "raw")
		data := bytes.Repeat([]byte{byte(i + 1)}, 4096)
		img, err := w.cat.Upload(ctx, w.as["member-a"], img.ID, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	repo := imgs[0].Repository
	latestIs := func(step string, want catalog.Image) {
		t.Helper()
		d, err := w.store.ResolveTag(ctx, repo, catalog.TagLatest)
		if err != nil || d.String() != want.Reference {
			t.Fatalf("%s: latest is %s (%v), want image %s (%s)", step, d, err, want.ID, want.Reference)
		}
	}
	latestIs("after the uploads", imgs[3])
	steps := []struct {
		name   string
		delete int
		latest int
	}{
		{"delete a middle image", 1, 3},
		{"delete the newest", 3, 2},
		{"delete the newest again", 2, 0},
	}
	for _, s := range steps {
		if err := w.cat.Delete(ctx, w.as["member-a"], imgs[s.delete].ID); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		latestIs(s.name, imgs[s.latest])
	}
}

// TestListByName: sort_key=name (ascending) walks the name-ordered indexes, pages with a
// marker, follows renames, and agrees with the general sort.
func TestListByName(t *testing.T) {
	redisURL := testenv.StartRedis(t)
	for _, backend := range []string{"", redisURL} {
		testListByName(t, newWorldOn(t, backend))
	}
}

func testListByName(t *testing.T, w *world) {
	names := []string{"delta", "alpha", "charlie", "bravo", "alpha", "echo|pipe"}
	var ids []string
	for _, n := range names {
		ids = append(ids, w.create(t, "member-a", n, "raw").ID)
	}
	// Rename one; share one of b's images with a.
	if _, err := w.cat.Update(ctx, w.as["member-a"], ids[0], []catalog.Change{{Op: "replace", Path: "name", Value: json.RawMessage(`"aardvark"`)}}); err != nil {
		t.Fatal(err)
	}
	shared := w.create(t, "member-b", "baker", "raw")
	if _, err := w.cat.AddMember(ctx, w.as["member-b"], shared.ID, w.project["a"]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cat.SetMemberStatus(ctx, w.as["member-a"], shared.ID, w.project["a"], "accepted"); err != nil {
		t.Fatal(err)
	}
	byName := []catalog.SortKey{{Key: "name", Asc: true}}
	var got []string
	marker := ""
	for page := 0; page < 10; page++ {
		imgs, full, err := w.cat.List(ctx, w.as["member-a"], catalog.ListOptions{Sort: byName, Limit: 2, Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range imgs {
			got = append(got, *img.Name)
		}
		if !full {
			break
		}
		marker = imgs[len(imgs)-1].ID
	}
	want := []string{"aardvark", "alpha", "alpha", "baker", "bravo", "charlie", "echo|pipe"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("by name: %v, want %v", got, want)
	}
	// Extra images: names that extend "alpha" or that it extends, more alphas, one shared
	// with a and one not; all created in the same second, as a burst of creates is (Glance's
	// timestamps have no fraction), so only the ids order them.
	clock := w.cat.Now
	burst := clock()
	w.cat.Now = func() time.Time { return burst }
	w.create(t, "member-a", "alphabet", "raw")
	w.create(t, "member-a", "alph", "raw")
	w.create(t, "member-a", "alpha", "raw")
	sharedAlpha := w.create(t, "member-b", "alpha", "raw")
	if _, err := w.cat.AddMember(ctx, w.as["member-b"], sharedAlpha.ID, w.project["a"]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cat.SetMemberStatus(ctx, w.as["member-a"], sharedAlpha.ID, w.project["a"], "accepted"); err != nil {
		t.Fatal(err)
	}
	w.create(t, "member-b", "alpha", "raw") // not shared: never listed for a
	w.cat.Now = clock
	bravo, err := w.cat.Get(ctx, w.as["member-a"], ids[3])
	if err != nil || *bravo.Name != "bravo" {
		t.Fatalf("bravo: %v %v", bravo.Name, err)
	}

	// Each order an index walk serves, with and without a one-name filter, paged, equals
	// the general path's sort with Glance's tie-breakers spelled out (their direction is
	// that of the one key given).
	asc, desc := true, false
	orders := []struct {
		name    string
		sort    []catalog.SortKey
		general []catalog.SortKey
	}{
		{"default", nil, []catalog.SortKey{{Key: "created_at", Asc: desc}, {Key: "id", Asc: desc}}},
		{"created_at:asc", []catalog.SortKey{{Key: "created_at", Asc: asc}}, []catalog.SortKey{{Key: "created_at", Asc: asc}, {Key: "id", Asc: asc}}},
		{"name:asc", byName, []catalog.SortKey{{Key: "name", Asc: asc}, {Key: "created_at", Asc: asc}, {Key: "id", Asc: asc}}},
		{"name:desc", []catalog.SortKey{{Key: "name", Asc: desc}}, []catalog.SortKey{{Key: "name", Asc: desc}, {Key: "created_at", Asc: desc}, {Key: "id", Asc: desc}}},
	}
	for _, o := range orders {
		for _, filter := range []catalog.Filter{{}, {Names: []string{"alpha"}}} {
			if !catalog.IndexWalk(catalog.ListOptions{Filter: filter, Sort: o.sort}) {
				t.Fatalf("%s, filter %v: not served by an index walk", o.name, filter.Names)
			}
			general, _, err := w.cat.List(ctx, w.as["member-a"], catalog.ListOptions{Filter: filter, Sort: o.general, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(filter.Names) == 1 && len(general) != 4 {
				t.Fatalf("%s: %d alphas by the general path, want 4", o.name, len(general))
			}
			var want, paged []string
			for _, img := range general {
				want = append(want, *img.Name+"/"+img.ID)
			}
			marker := ""
			for page := 0; page < 20; page++ {
				imgs, full, err := w.cat.List(ctx, w.as["member-a"], catalog.ListOptions{Filter: filter, Sort: o.sort, Limit: 3, Marker: marker})
				if err != nil {
					t.Fatal(err)
				}
				for _, img := range imgs {
					paged = append(paged, *img.Name+"/"+img.ID)
				}
				if !full {
					break
				}
				marker = imgs[len(imgs)-1].ID
			}
			if strings.Join(paged, ",") != strings.Join(want, ",") {
				t.Fatalf("%s, filter %v, pages of 3:\n%v\nwant\n%v", o.name, filter.Names, paged, want)
			}
			if len(filter.Names) == 0 {
				continue
			}
			// A marker of another name: by creation, the alphas beyond its time; by name,
			// all of them or none as its name lies before or after "alpha" in the order.
			var beyond []string
			for _, img := range general {
				byTime := o.general[0].Key == "created_at" && img.CreatedAt.After(bravo.CreatedAt) == o.general[0].Asc
				if byTime || (o.general[0].Key == "name" && !o.general[0].Asc) {
					beyond = append(beyond, img.ID)
				}
			}
			imgs, _, err := w.cat.List(ctx, w.as["member-a"], catalog.ListOptions{Filter: filter, Sort: o.sort, Marker: bravo.ID})
			var got []string
			for _, img := range imgs {
				got = append(got, img.ID)
			}
			if err != nil || strings.Join(got, ",") != strings.Join(beyond, ",") {
				t.Fatalf("%s, alpha after the marker bravo: %v %v, want %v", o.name, got, err, beyond)
			}
		}
	}
}

// TestMigrateIndexes: a store whose name indexes an older release wrote (version 1) is
// brought to the current layout once; lists by name are right afterwards.
func TestMigrateIndexes(t *testing.T) {
	redisURL := testenv.StartRedis(t)
	for _, backend := range []string{"", redisURL} {
		w := newWorldOn(t, backend)
		for _, n := range []string{"b", "a", "b", "c"} {
			w.create(t, "member-a", n, "raw")
		}
		shared := w.create(t, "member-b", "a", "raw")
		if _, err := w.cat.AddMember(ctx, w.as["member-b"], shared.ID, w.project["a"]); err != nil {
			t.Fatal(err)
		}
		if err := w.cat.Downgrade(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := w.cat.Migrate(ctx); err != nil || n != 5 {
			t.Fatalf("migrate: %d images moved (%v), want 5", n, err)
		}
		if n, err := w.cat.Migrate(ctx); err != nil || n != 0 {
			t.Fatalf("second migrate: %d images moved (%v), want 0", n, err)
		}
		for _, who := range []string{"member-a", "member-b"} {
			all := catalog.Filter{MemberStatus: "all"}
			byName, _, err := w.cat.List(ctx, w.as[who], catalog.ListOptions{Filter: all, Sort: []catalog.SortKey{{Key: "name", Asc: true}}})
			if err != nil {
				t.Fatal(err)
			}
			general, _, _ := w.cat.List(ctx, w.as[who], catalog.ListOptions{Filter: all,
				Sort: []catalog.SortKey{{Key: "name", Asc: true}, {Key: "created_at", Asc: true}, {Key: "id", Asc: true}}})
			var got, want []string
			for _, img := range byName {
				got = append(got, img.ID)
			}
			for _, img := range general {
				want = append(want, img.ID)
			}
			if len(want) == 0 || strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("%s by name after the migration: %v, want %v", who, got, want)
			}
			newest, _, _ := w.cat.List(ctx, w.as[who], catalog.ListOptions{Filter: all})
			general, _, _ = w.cat.List(ctx, w.as[who], catalog.ListOptions{Filter: all,
				Sort: []catalog.SortKey{{Key: "created_at"}, {Key: "id"}}})
			got, want = nil, nil
			for _, img := range newest {
				got = append(got, img.ID)
			}
			for _, img := range general {
				want = append(want, img.ID)
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("%s newest first after the migration: %v, want %v", who, got, want)
			}
		}
	}
}
