package conformance

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/internal/testenv"
)

// The cross-world tests (DESIGN.md, "The translation layer"): what one door writes, the other
// door reads. One server with the embedded identity per metadata backend; a member of the
// project "demo" drives the real clients: the openstack CLI (6.0) and glance (4.1) on the
// Image API, oras (1.3) and containerd's ctr on the Registry API.

// crossMember is the member of project "demo" every client runs as.
var crossMember = account{"cross-alice", "cross-pw:1#"}

// TestCrossWorld:
//  1. images created with `openstack image create --file` (qcow2, raw, vmdk) are VM-image
//     indexes in demo/<slug>: `oras pull` of :latest and :<id> saves the disk byte-identical
//     under its title, containerd pulls the linux/amd64 containerDisk of qcow2 and raw and
//     mounts /disk/disk.img byte-identical (uid/gid 107); vmdk has no containerDisk;
//  2. qcow2 disks pushed with `oras push` (disk media type, and oras' default media type
//     with a .qcow2 title) are listed by `openstack image list --long` as active qcow2 of the
//     right size and `openstack image save` gives them back byte-identical;
//  3. deleting on either side deletes on both;
//  4. an unsafe qcow2 (with a backing file) is refused by both doors and never listed.
func TestCrossWorld(t *testing.T) {
	t.Parallel()
	c := crossTools{
		oras:    testenv.RequireTool(t, "oras"),
		osc:     testenv.RequireTool(t, "openstack"),
		glance:  testenv.RequireTool(t, "glance"),
		qemuImg: testenv.RequireTool(t, "qemu-img"),
	}
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			w := startCrossWorld(t, b, c)
			t.Run("upload-then-pull", func(t *testing.T) { t.Parallel(); crossUploadThenPull(t, w) })
			t.Run("push-then-list", func(t *testing.T) { t.Parallel(); crossPushThenList(t, w) })
			t.Run("unsafe-disk", func(t *testing.T) { t.Parallel(); crossUnsafeDisk(t, w) })
			t.Cleanup(func() { t.Logf("%s: %.1fs", b, time.Since(start).Seconds()) })
		})
	}
}

// crossTools are the paths of the clients.
type crossTools struct{ oras, osc, glance, qemuImg string }

// crossWorld is one server with the project demo and its member, and the member's clients.
type crossWorld struct {
	crossTools
	srv    *testenv.Server
	demoID string
	reg    string // registry host:port
	base   string // Registry API base URL with the member's Basic credentials
	cli    openstackCLI
}

func startCrossWorld(t *testing.T, backend string, c crossTools) crossWorld {
	t.Helper()
	srv := startBackend(t, backend, authArgs()...)
	id := testenv.AdminIdentity(t, srv.APIURL(false), nil, adminPassword)
	demo := id.Project(t, "demo")
	id.User(t, demo, crossMember.User, crossMember.Password, "member")
	return crossWorld{
		crossTools: c, srv: srv, demoID: demo, reg: srv.RegistryAddr,
		base: "http://" + url.UserPassword(crossMember.User, crossMember.Password).String() + "@" + srv.RegistryAddr,
		cli:  newOpenstackCLI(t, c.osc, srv, crossMember, "demo"),
	}
}

// orasLogin returns oras logged in as the member (`oras login --password-stdin`) with its own
// credential store (--registry-config), working in dir.
func (w crossWorld) orasLogin(t *testing.T, dir string) orasSession {
	t.Helper()
	o := orasSession{tool{Path: w.oras, Dir: dir, Env: credentialEnv(t), Stdin: crossMember.Password}, filepath.Join(t.TempDir(), "auth.json")}
	o.must(t, "login", "--plain-http", "--registry-config", o.cfg, "-u", crossMember.User, "--password-stdin", w.reg)
	return o
}

// orasSession is oras with the credential store a login filled.
type orasSession struct {
	tool
	cfg string
}

// args is the command line of an oras subcommand (e.g. "repo tags") with the flags every call
// needs, then rest.
func (o orasSession) args(cmd string, rest ...string) []string {
	return slices.Concat(strings.Fields(cmd), []string{"--plain-http", "--registry-config", o.cfg}, rest)
}

// crossUploadThenPull: part 1, and the Image API side of part 3.
func crossUploadThenPull(t *testing.T, w crossWorld) {
	dir := t.TempDir()
	ctd := startContainerd(t)
	oras := w.orasLogin(t, dir)

	// A 64 MiB qcow2 holding random data at two places; a raw disk of random bytes; a vmdk.
	rawSrc := filepath.Join(dir, "src.raw")
	writeSparseRandom(t, rawSrc, 64<<20, map[int64]int{0: 3 << 20, 40 << 20: 1 << 20})
	qemuImg(t, w.qemuImg, dir, "convert", "-f", "raw", "-O", "qcow2", rawSrc, "disk.qcow2")
	writeFile(t, filepath.Join(dir, "disk.raw"), randomBytes(6<<20+512))
	vmdkSrc := filepath.Join(dir, "vmdk-src.raw")
	writeSparseRandom(t, vmdkSrc, 16<<20, map[int64]int{1 << 20: 1 << 20})
	qemuImg(t, w.qemuImg, dir, "convert", "-f", "raw", "-O", "vmdk", vmdkSrc, "disk.vmdk")

	disks := []struct {
		name, format, file, slug string
		containerDisk            bool
		virtualSize              int64
	}{
		{"cross", "qcow2", "disk.qcow2", "cross", true, 64 << 20},
		{"Cross Raw", "raw", "disk.raw", "cross-raw", true, 6<<20 + 512},
		{"cross vmdk", "vmdk", "disk.vmdk", "cross-vmdk", false, 16 << 20},
	}
	var crossID string
	for _, d := range disks {
		file := filepath.Join(dir, d.file)
		want, size := fileDigest(t, file)
		created := w.cli.object(t, "image", "create", "--disk-format", d.format, "--container-format", "bare", "--file", file, d.name)
		id, _ := created["id"].(string)
		if id == "" {
			t.Fatalf("openstack image create %s printed no id: %v", d.name, created)
		}
		if d.format == "qcow2" {
			crossID = id
		}
		img := w.cli.object(t, "image", "show", id)
		if img["status"] != "active" || img["size"] != float64(size) || img["disk_format"] != d.format ||
			img["virtual_size"] != float64(d.virtualSize) || img["owner"] != w.demoID {
			t.Errorf("openstack image show %s: status %v size %v disk_format %v virtual_size %v owner %v; want active %d %s %d %s",
				d.name, img["status"], img["size"], img["disk_format"], img["virtual_size"], img["owner"], size, d.format, d.virtualSize, w.demoID)
		}

		// The index, read through the Registry API: the containerDisk (qcow2 and raw only)
		// and the disk artifact whose one layer is the uploaded file.
		repo := "demo/" + d.slug
		title := d.slug + "." + d.format
		idx := readVMIndex(t, w.base, repo, id)
		if (idx.containerDisk != nil) != d.containerDisk || idx.artifact == nil {
			t.Fatalf("%s:%s: containerDisk %v, artifact %v; want containerDisk %v and an artifact", repo, id,
				idx.containerDisk != nil, idx.artifact != nil, d.containerDisk)
		}
		l := idx.artifact.Layers
		if len(l) != 1 || l[0].MediaType != "application/vnd.diskimage."+d.format || l[0].Digest != want ||
			l[0].Size != size || l[0].Annotations[ocispec.AnnotationTitle] != title {
			t.Errorf("%s:%s: artifact layers %+v; want one %s layer %s (%d bytes) titled %s", repo, id, l,
				"application/vnd.diskimage."+d.format, want, size, title)
		}
		if latest := readVMIndex(t, w.base, repo, "latest"); latest.digest != idx.digest {
			t.Errorf("%s:latest is %s, %s:%s is %s; want the same index", repo, latest.digest, repo, id, idx.digest)
		}

		// oras pull of :latest and :<id> saves exactly the disk, under its title.
		for _, tag := range []string{"latest", id} {
			out := filepath.Join(dir, "pull-"+d.slug+"-"+tag)
			oras.must(t, oras.args("pull", "--no-tty", "-o", out, w.reg+"/"+repo+":"+tag)...)
			if names := dirNames(t, out); !slices.Equal(names, []string{title}) {
				t.Errorf("oras pull %s:%s saved %q, want [%s]", repo, tag, names, title)
				continue
			}
			requireSameFile(t, filepath.Join(out, title), want, size)
		}

		// containerd: pull the platform manifest and mount it: /disk/disk.img is the disk.
		ref := w.reg + "/" + repo + ":latest"
		pull := []string{"images", "pull", "--plain-http", "--user", crossMember.creds(), "--snapshotter", "native", "--platform", "linux/amd64", ref}
		if !d.containerDisk {
			out := ctd.mustFail(t, pull...)
			if !strings.Contains(out, "no match for platform") {
				t.Errorf("ctr images pull of a %s image without containerDisk failed for another reason:\n%s", d.format, tail(out, 10))
			}
			continue
		}
		ctd.must(t, pull...)
		if listed := ctd.must(t, "images", "ls"); !hasImageLine(listed, ref, idx.digest) {
			t.Errorf("ctr images ls has no %s at %s:\n%s", ref, idx.digest, listed)
		}
		var cfg ocispec.Image
		decodeJSON(t, string(getBlob(t, w.base, repo, idx.containerDisk.Config.Digest)), &cfg)
		if len(cfg.RootFS.DiffIDs) != 1 || len(idx.containerDisk.Layers) != 1 ||
			idx.containerDisk.Layers[0].MediaType != ocispec.MediaTypeImageLayer {
			t.Fatalf("%s containerDisk: layers %+v, diff_ids %v; want one uncompressed tar layer", repo, idx.containerDisk.Layers, cfg.RootFS.DiffIDs)
		}
		target := filepath.Join(dir, "mnt-"+d.slug)
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { testenv.UnmountAll(t, target) })
		how, err := ctd.MountImage(ref, "linux/amd64", chainID(cfg.RootFS.DiffIDs).String(), target)
		if err != nil {
			t.Fatalf("mount %s: %v", ref, err)
		}
		t.Logf("mounted %s with %s", ref, how)
		requireSameFile(t, filepath.Join(target, "disk", "disk.img"), want, size)
		requireOwnerMode(t, filepath.Join(target, "disk"), qemuUID, 0o555|os.ModeDir)
		requireOwnerMode(t, filepath.Join(target, "disk", "disk.img"), qemuUID, 0o444)
		if names := dirNames(t, filepath.Join(target, "disk")); !slices.Equal(names, []string{"disk.img"}) {
			t.Errorf("%s: /disk holds %q, want [disk.img]", ref, names)
		}
		if err := ctd.UnmountImage(target); err != nil {
			t.Fatal(err)
		}
	}

	// Part 3, Image API side: `openstack image delete` takes the index and both tags away.
	repo, ref := "demo/cross", w.reg+"/demo/cross"
	// Beside them, the server's disk-inspection attestation of the index (cosign's .att tag).
	if tags, atts := withoutAttestations(strings.Fields(oras.must(t, oras.args("repo tags", ref)...))); !slices.Equal(tags, sorted(crossID, "latest")) || atts != 1 {
		t.Fatalf("oras repo tags %s: %q and %d attestation tags, want [%s latest] and 1", repo, tags, atts, crossID)
	}
	w.cli.must(t, "image", "delete", crossID)
	for _, tag := range []string{crossID, "latest"} {
		out := oras.mustFail(t, oras.args("pull", "--no-tty", "-o", filepath.Join(dir, "after-delete"), ref+":"+tag)...)
		if l := strings.ToLower(out); !strings.Contains(l, "not found") && !strings.Contains(l, "manifest unknown") {
			t.Errorf("oras pull %s:%s after openstack image delete failed for another reason:\n%s", repo, tag, tail(out, 10))
		}
		requireManifestGone(t, w.base, repo, tag)
	}
	if tags := strings.Fields(oras.must(t, oras.args("repo tags", ref)...)); len(tags) != 0 {
		t.Errorf("oras repo tags %s after openstack image delete: %q, want none", repo, tags)
	}
	w.cli.mustFail(t, "No Image found", "image", "show", crossID)
}

// crossPushThenList: part 2, and the Registry API side of part 3.
func crossPushThenList(t *testing.T, w crossWorld) {
	dir := t.TempDir()
	oras := w.orasLogin(t, dir)
	writeSparseRandom(t, filepath.Join(dir, "p1.raw"), 32<<20, map[int64]int{0: 2 << 20, 20 << 20: 512 << 10})
	qemuImg(t, w.qemuImg, dir, "convert", "-f", "raw", "-O", "qcow2", "p1.raw", "pushed.qcow2")
	writeSparseRandom(t, filepath.Join(dir, "p2.raw"), 8<<20, map[int64]int{4 << 20: 1 << 20})
	qemuImg(t, w.qemuImg, dir, "convert", "-f", "raw", "-O", "qcow2", "p2.raw", "second.qcow2")

	type pushed struct {
		file, ref, mediaType string
		name                 string // of the image: the repository and tag pushed to
		manifest             digest.Digest
		want                 digest.Digest
		size                 int64
	}
	ref := w.reg + "/demo/pushed"
	pushes := []*pushed{
		{file: "pushed.qcow2", ref: ref + ":v1", name: "demo/pushed:v1", mediaType: "application/vnd.diskimage.qcow2"},
		{file: "second.qcow2", ref: ref + ":v2", name: "demo/pushed:v2", mediaType: ocispec.MediaTypeImageLayer}, // oras' default
	}
	for _, p := range pushes {
		p.want, p.size = fileDigest(t, filepath.Join(dir, p.file))
		arg := p.file
		if p.mediaType != ocispec.MediaTypeImageLayer {
			arg += ":" + p.mediaType
		}
		var out orasDescriptor
		decodeJSON(t, oras.must(t, oras.args("push", "--no-tty", "--format", "json", p.ref, arg)...), &out)
		p.manifest = out.Digest
		// What the server holds is what was pushed, with the media type the case is about.
		status, body, _ := getManifest(t, w.base, "demo/pushed", p.manifest.String())
		var m ocispec.Manifest
		if status == 200 {
			decodeJSON(t, string(body), &m)
		}
		if status != 200 || len(m.Layers) != 1 || m.Layers[0].MediaType != p.mediaType || m.Layers[0].Digest != p.want ||
			m.Layers[0].Annotations[ocispec.AnnotationTitle] != p.file {
			t.Fatalf("manifest of %s: %d %s; want one %s layer %s titled %s", p.ref, status, body, p.mediaType, p.want, p.file)
		}
	}

	rows := w.cli.list(t, "--long")
	ids := map[string]string{}
	for _, p := range pushes {
		r, ok := rows[p.name]
		if !ok {
			t.Errorf("openstack image list --long has no %s (%s pushed there): %v", p.name, p.file, rows)
			continue
		}
		if r.Status != "active" || r.Size == nil || *r.Size != p.size || r.DiskFormat != "qcow2" || r.Project != w.demoID {
			t.Errorf("openstack image list --long, %s: status %q size %v disk format %q project %q; want active %d qcow2 %s",
				p.file, r.Status, deref(r.Size), r.DiskFormat, r.Project, p.size, w.demoID)
		}
		ids[p.file] = r.ID
		saved := filepath.Join(dir, "saved-"+p.file)
		w.cli.must(t, "image", "save", "--file", saved, r.ID)
		requireSameFile(t, saved, p.want, p.size)
	}
	if len(ids) != len(pushes) {
		t.FailNow()
	}

	// The repository holds the pushed tags and, for each pushed qcow2, the documented
	// containerDisk view at :<image id> (README), and the server's attestations of both (the
	// pushed manifest's and the view's .att tags).
	if tags, atts := withoutAttestations(strings.Fields(oras.must(t, oras.args("repo tags", ref)...))); !slices.Equal(tags, sorted("v1", "v2", ids["pushed.qcow2"], ids["second.qcow2"])) || atts != 4 {
		t.Errorf("oras repo tags demo/pushed: %q and %d attestation tags, want v1, v2 and the image ids %s, %s, and 4", tags, atts, ids["pushed.qcow2"], ids["second.qcow2"])
	}

	// Part 3, Registry API side: `oras manifest delete` deletes the image; the other stays.
	oras.must(t, oras.args("manifest delete", "--force", ref+"@"+pushes[0].manifest.String())...)
	w.cli.mustFail(t, "No Image found", "image", "show", ids["pushed.qcow2"])
	if img := w.cli.object(t, "image", "show", ids["second.qcow2"]); img["status"] != "active" {
		t.Errorf("second.qcow2 after deleting pushed.qcow2's manifest: status %v, want active", img["status"])
	}
	// The repository keeps what was pushed, less the deleted image's tags (v1 and its id).
	if tags, atts := withoutAttestations(strings.Fields(oras.must(t, oras.args("repo tags", ref)...))); !slices.Equal(tags, sorted("v2", ids["second.qcow2"])) || atts != 2 {
		t.Errorf("oras repo tags demo/pushed after oras manifest delete of v1: %q and %d attestation tags, want %q and 2", tags, atts, sorted("v2", ids["second.qcow2"]))
	}
	oras.must(t, oras.args("pull", "--no-tty", "-o", filepath.Join(dir, "v2"), ref+":v2")...)
	requireSameFile(t, filepath.Join(dir, "v2", "second.qcow2"), pushes[1].want, pushes[1].size)
}

// crossUnsafeDisk: part 4. A qcow2 with a backing file is refused on both doors.
func crossUnsafeDisk(t *testing.T, w crossWorld) {
	dir := t.TempDir()
	oras := w.orasLogin(t, dir)
	qemuImg(t, w.qemuImg, dir, "create", "-f", "qcow2", "base.qcow2", "16M")
	qemuImg(t, w.qemuImg, dir, "create", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", "bad.qcow2")
	writeSparseRandom(t, filepath.Join(dir, "good.raw"), 4<<20, map[int64]int{0: 1 << 20})
	qemuImg(t, w.qemuImg, dir, "convert", "-f", "raw", "-O", "qcow2", "good.raw", "good.qcow2")

	for tag, arg := range map[string]string{"v1": "bad.qcow2:application/vnd.diskimage.qcow2", "v2": "bad.qcow2"} {
		out := oras.mustFail(t, oras.args("push", "--no-tty", w.reg+"/demo/bad:"+tag, arg)...)
		if !strings.Contains(strings.ToLower(out), "manifest invalid") {
			t.Errorf("oras push of a qcow2 with a backing file (%s) failed for another reason:\n%s", arg, tail(out, 10))
		}
		requireManifestGone(t, w.base, "demo/bad", tag)
	}

	// openstack image create --file: the upload is refused with 415. (openstacksdk deletes
	// the image it created when the upload fails: the queued state is checked with glance.)
	out := w.cli.mustFail(t, "415", "image", "create", "--disk-format", "qcow2", "--container-format", "bare",
		"--file", filepath.Join(dir, "bad.qcow2"), "bad-upload")
	if !strings.Contains(out, "Unsupported Media Type") {
		t.Errorf("openstack image create --file bad.qcow2: %s", tail(out, 10))
	}

	// glance image-create --file (which keeps the image when its upload fails): refused with
	// 415 naming the backing file, and the image stays queued without data; a good upload
	// after it makes the image active.
	out = w.cli.runMustFail(t, w.glance, "415", "image-create", "--name", "bad-queued", "--disk-format", "qcow2",
		"--container-format", "bare", "--file", filepath.Join(dir, "bad.qcow2"))
	if !strings.Contains(out, "backing file") {
		t.Errorf("glance image-create --file bad.qcow2: %s", tail(out, 10))
	}
	m := glanceIDRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("glance image-create printed no image id:\n%s", out)
	}
	id := m[1]
	if img := w.cli.object(t, "image", "show", id); img["status"] != "queued" || img["size"] != nil || img["checksum"] != nil {
		t.Errorf("after the refused upload: status %v size %v checksum %v; want queued without data", img["status"], img["size"], img["checksum"])
	}
	requireManifestGone(t, w.base, "demo/bad-queued", id)
	requireManifestGone(t, w.base, "demo/bad-queued", "latest")
	w.cli.runMust(t, w.glance, "image-upload", "--file", filepath.Join(dir, "good.qcow2"), id)
	good, goodSize := fileDigest(t, filepath.Join(dir, "good.qcow2"))
	if img := w.cli.object(t, "image", "show", id); img["status"] != "active" || img["size"] != float64(goodSize) {
		t.Errorf("after a good upload: status %v size %v; want active %d", img["status"], img["size"], goodSize)
	}
	oras.must(t, oras.args("pull", "--no-tty", "-o", filepath.Join(dir, "good"), w.reg+"/demo/bad-queued:"+id)...)
	requireSameFile(t, filepath.Join(dir, "good", "bad-queued.qcow2"), good, goodSize)

	// Neither bad disk is an image anyone lists.
	rows := w.cli.list(t)
	for _, name := range []string{"bad.qcow2", "bad-upload"} {
		if r, ok := rows[name]; ok {
			t.Errorf("openstack image list shows the unsafe disk %s: %+v", name, r)
		}
	}
}

// readVMIndex reads the index repo:ref through the Registry API and its two kinds of children:
// the containerDisk (platform linux/amd64) and the disk artifact (no platform, the Xloud VM
// image artifactType). Any other child, or more than one of a kind, fails the test.
func readVMIndex(t *testing.T, base, repo, ref string) vmIndex {
	t.Helper()
	status, body, ct := getManifest(t, base, repo, ref)
	if status != 200 || ct != ocispec.MediaTypeImageIndex {
		t.Fatalf("GET manifest %s:%s: %d %s %s, want 200 %s", repo, ref, status, ct, body, ocispec.MediaTypeImageIndex)
	}
	var idx ocispec.Index
	decodeJSON(t, string(body), &idx)
	out := vmIndex{digest: digest.FromBytes(body)}
	for _, d := range idx.Manifests {
		status, mb, _ := getManifest(t, base, repo, d.Digest.String())
		if status != 200 || digest.FromBytes(mb) != d.Digest {
			t.Fatalf("GET manifest %s@%s (child of %s): %d", repo, d.Digest, ref, status)
		}
		var m ocispec.Manifest
		decodeJSON(t, string(mb), &m)
		switch {
		case d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == "amd64" && out.containerDisk == nil:
			out.containerDisk = &m
		case d.Platform == nil && d.ArtifactType == vmImageArtifactType && m.ArtifactType == vmImageArtifactType && out.artifact == nil:
			out.artifact = &m
		default:
			t.Fatalf("index %s:%s has an unexpected child %s (platform %v, artifactType %q):\n%s", repo, ref, d.Digest, d.Platform, d.ArtifactType, body)
		}
	}
	return out
}

// glanceIDRE finds the id in the image table glance prints.
var glanceIDRE = regexp.MustCompile(`\|\s*id\s*\|\s*([0-9a-f-]{36})\s*\|`)

type vmIndex struct {
	digest        digest.Digest
	containerDisk *ocispec.Manifest
	artifact      *ocispec.Manifest
}

// openstackCLI runs the Debian openstack and glance CLIs as one user of a live server's
// embedded identity, with an environment of its own (a fresh HOME: no clouds.yaml, no
// glanceclient cache; none of the caller's OS_* variables).
type openstackCLI struct {
	osc string // the openstack binary
	env []string
}

func newOpenstackCLI(t *testing.T, osc string, srv *testenv.Server, a account, project string) openstackCLI {
	env := []string{"HOME=" + t.TempDir()}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OS_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "OS_AUTH_URL="+srv.APIURL(false)+"/identity/v3",
		"OS_USERNAME="+a.User, "OS_PASSWORD="+a.Password, "OS_PROJECT_NAME="+project,
		"OS_USER_DOMAIN_NAME=Default", "OS_PROJECT_DOMAIN_NAME=Default",
		"OS_IDENTITY_API_VERSION=3", "OS_INTERFACE=public", "OS_REGION_NAME=RegionOne")
	return openstackCLI{osc: osc, env: env}
}

// run runs bin with args and a standard input that is a pipe already closed for writing (no
// terminal, nothing to read). It returns stdout, or, when bin fails, stdout and stderr.
func (c openstackCLI) run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = c.env
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pw.Close()
	defer r.Close()
	cmd.Stdin = r
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	err = cmd.Run()
	t.Logf("$ %s %s  (%.2fs)", filepath.Base(bin), strings.Join(args, " "), time.Since(start).Seconds())
	if err != nil {
		return fmt.Sprintf("stdout:\n%s\nstderr:\n%s", o.String(), e.String()), err
	}
	return o.String(), nil
}

func (c openstackCLI) runMust(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := c.run(t, bin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, tail(out, 40))
	}
	return out
}

// runMustFail runs bin, which must fail mentioning want; it returns what bin printed.
func (c openstackCLI) runMustFail(t *testing.T, bin, want string, args ...string) string {
	t.Helper()
	out, err := c.run(t, bin, args...)
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("%s %s: err %v, want a failure mentioning %q\n%s", filepath.Base(bin), strings.Join(args, " "), err, want, tail(out, 40))
	}
	return out
}

func (c openstackCLI) must(t *testing.T, args ...string) string {
	t.Helper()
	return c.runMust(t, c.osc, args...)
}

func (c openstackCLI) mustFail(t *testing.T, want string, args ...string) string {
	t.Helper()
	return c.runMustFail(t, c.osc, want, args...)
}

// object runs `openstack <args> -f json` and decodes the object it prints.
func (c openstackCLI) object(t *testing.T, args ...string) map[string]any {
	t.Helper()
	var m map[string]any
	decodeJSON(t, c.must(t, append(args, "-f", "json")...), &m)
	return m
}

// imageRow is a row of `openstack image list [--long] -f json`.
type imageRow struct {
	ID         string `json:"ID"`
	Name       string `json:"Name"`
	Status     string `json:"Status"`
	DiskFormat string `json:"Disk Format"`
	Size       *int64 `json:"Size"`
	Project    string `json:"Project"`
}

// list runs `openstack image list <args> -f json` and returns the rows by name (a name
// listed twice fails the test).
func (c openstackCLI) list(t *testing.T, args ...string) map[string]imageRow {
	t.Helper()
	var rows []imageRow
	decodeJSON(t, c.must(t, slices.Concat([]string{"image", "list"}, args, []string{"-f", "json"})...), &rows)
	byName := map[string]imageRow{}
	for _, r := range rows {
		if _, dup := byName[r.Name]; dup {
			t.Fatalf("openstack image list %v lists %s twice: %+v", args, r.Name, rows)
		}
		byName[r.Name] = r
	}
	return byName
}

// qemuImg runs qemu-img in dir.
func qemuImg(t *testing.T, bin, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// writeSparseRandom writes a sparse file of size bytes with random data of the given lengths
// at the given offsets.
func writeSparseRandom(t *testing.T, path string, size int64, data map[int64]int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off, n := range data {
		if _, err := f.WriteAt(randomBytes(n), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// dirNames lists the names in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// attestationTagRE matches cosign's attestation tags (sha256-<hex>.att), where the server
// keeps its disk-inspection attestations.
var attestationTagRE = regexp.MustCompile(`^sha256-[0-9a-f]{64}\.att$`)

// withoutAttestations returns tags less the attestation tags, and how many those were.
func withoutAttestations(tags []string) ([]string, int) {
	rest := []string{}
	for _, tag := range tags {
		if !attestationTagRE.MatchString(tag) {
			rest = append(rest, tag)
		}
	}
	return rest, len(tags) - len(rest)
}
