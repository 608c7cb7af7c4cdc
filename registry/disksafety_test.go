package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/diskformat"
	"github.com/xloud/xloud-image/internal/testenv"
)

// tarEntry is one tar entry of a hand-made layer.
type tarEntry struct {
	name string
	typ  byte
	link string
	body []byte
	gnu  bool // GNU format (long names as ././@LongLink) instead of PAX
}

func tarFile(name string, body []byte) tarEntry {
	return tarEntry{name: name, typ: tar.TypeReg, body: body}
}
func tarDir(name string) tarEntry { return tarEntry{name: name, typ: tar.TypeDir} }
func tarSymlink(name, to string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeSymlink, link: to}
}

// tarOf writes entries as a tar, in order, duplicates and all.
func tarOf(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Size: int64(len(e.body)), Mode: 0o644}
		if e.gnu {
			h.Format = tar.FormatGNU
		}
		if e.typ == tar.TypeChar {
			h.Devmajor, h.Devminor = 8, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Close()
	return buf.Bytes()
}

func gzipOf(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func zstdOf(b []byte) []byte {
	zw, _ := zstd.NewWriter(nil)
	return zw.EncodeAll(b, nil)
}

// toolOf compresses b with a command-line tool (bzip2, xz).
func toolOf(t *testing.T, tool string, b []byte) []byte {
	t.Helper()
	cmd := exec.Command(testenv.RequireTool(t, tool), "-c")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return out
}

// testLayer is a hand-made layer blob and the media type the manifest gives it.
type testLayer struct {
	mediaType string
	blob      []byte
}

func plainLayer(b []byte) testLayer { return testLayer{v1.MediaTypeImageLayer, b} }

// diskFiles are the disks the cases put in layers: qcow2 made by qemu-img.
type diskFiles struct{ good, good2, bad []byte }

func newDiskFiles(t *testing.T) diskFiles {
	good, bad := qcow2Pair(t, "16M")
	good2, _ := qcow2Pair(t, "32M")
	var d diskFiles
	for p, f := range map[*[]byte]string{&d.good: good, &d.good2: good2, &d.bad: bad} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		*p = b
	}
	return d
}

// pushRunnable pushes a runnable image (an image config and the layers given) as member-a.
func (s *secured) pushRunnable(repo, tag string, layers ...testLayer) (int, []byte) {
	hdr := s.as("member-a")
	var descs []map[string]any
	var diffIDs []string
	for _, l := range layers {
		d := s.pushBlobAs(repo, l.blob, hdr)
		descs = append(descs, map[string]any{"mediaType": l.mediaType, "digest": d, "size": len(l.blob)})
		diffIDs = append(diffIDs, d)
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	cd := s.pushBlobAs(repo, cfg, hdr)
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": v1.MediaTypeImageManifest,
		"config": map[string]any{"mediaType": v1.MediaTypeImageConfig, "digest": cd, "size": len(cfg)}, "layers": descs})
	r, body := s.do("PUT", "/v2/"+repo+"/manifests/"+tag, m, append(hdr, "Content-Type", v1.MediaTypeImageManifest)...)
	return r.StatusCode, body
}

// images lists every image record, as admin.
func (s *secured) images(t *testing.T) []catalog.Image {
	t.Helper()
	imgs, _, err := s.catalog.List(context.Background(), s.scoped(t, "admin", "admin"), catalog.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}

// TestHostileContainerDisks: every way of leaving an unsafe or ambiguous disk at disk/ when
// the layers are unpacked is refused with MANIFEST_INVALID; nothing is stored or recorded.
func TestHostileContainerDisks(t *testing.T) {
	s := newSecured(t)
	d := newDiskFiles(t)
	long := "disk/" + strings.Repeat("l", 150) + ".qcow2"
	cases := []struct {
		name   string
		layers []testLayer
		reason string // in the error message
	}{
		{"later entry of the same name", []testLayer{plainLayer(tarOf(t, tarDir("disk/"), tarFile("disk/disk.img", d.good), tarFile("disk/disk.img", d.bad)))}, "twice"},
		{"same name in a later layer", []testLayer{plainLayer(tarOf(t, tarFile("disk/disk.img", d.good))), plainLayer(tarOf(t, tarFile("disk/disk.img", d.good2)))}, "twice"},
		{"unsafe second file", []testLayer{plainLayer(tarOf(t, tarFile("disk/a.img", d.good), tarFile("disk/b.qcow2", d.bad)))}, "backing"},
		{"two safe files", []testLayer{plainLayer(tarOf(t, tarFile("disk/a.qcow2", d.good), tarFile("disk/b.qcow2", d.good2)))}, "2 files"},
		{"unsafe disk in the second layer", []testLayer{plainLayer(tarOf(t, tarFile("etc/hostname", []byte("vm\n")))), plainLayer(tarOf(t, tarFile("disk/disk.img", d.bad)))}, "backing"},
		{"gzip layer", []testLayer{{v1.MediaTypeImageLayerGzip, gzipOf(tarOf(t, tarFile("disk/disk.img", d.bad)))}}, "backing"},
		{"docker gzip layer", []testLayer{{"application/vnd.docker.image.rootfs.diff.tar.gzip", gzipOf(tarOf(t, tarFile("disk/disk.img", d.bad)))}}, "backing"},
		{"zstd layer", []testLayer{{v1.MediaTypeImageLayerZstd, zstdOf(tarOf(t, tarFile("disk/disk.img", d.bad)))}}, "backing"},
		{"gzip bytes under a plain type", []testLayer{plainLayer(gzipOf(tarOf(t, tarFile("disk/disk.img", d.bad))))}, "backing"},
		{"bzip2 layer", []testLayer{plainLayer(toolOf(t, "bzip2", tarOf(t, tarFile("disk/disk.img", d.bad))))}, "backing"},
		{"xz layer", []testLayer{plainLayer(toolOf(t, "xz", tarOf(t, tarFile("disk/disk.img", d.good))))}, "xz"},
		{"symlink in disk/", []testLayer{plainLayer(tarOf(t, tarSymlink("disk/disk.img", "/var/lib/images/base.qcow2")))}, "link"},
		{"hardlink in disk/", []testLayer{plainLayer(tarOf(t, tarFile("data.qcow2", d.bad), tarEntry{name: "disk/disk.img", typ: tar.TypeLink, link: "data.qcow2"}))}, "link"},
		{"disk/ a symlink", []testLayer{plainLayer(tarOf(t, tarSymlink("disk", "/var/lib/images")))}, "link"},
		{"disk/ replaced by a symlink later", []testLayer{plainLayer(tarOf(t, tarFile("disk/disk.img", d.good))), plainLayer(tarOf(t, tarSymlink("disk", "/var/lib/images")))}, "link"},
		{"written through a symlink to disk/", []testLayer{plainLayer(tarOf(t, tarSymlink("a", "disk"), tarFile("a/evil.qcow2", d.bad)))}, "symlink"},
		{"written through a symlink of a lower layer", []testLayer{plainLayer(tarOf(t, tarSymlink("a", "/"))), plainLayer(tarOf(t, tarFile("a/disk/evil.qcow2", d.good)))}, "symlink"},
		{"./disk and disk//", []testLayer{plainLayer(tarOf(t, tarFile("./disk/disk.img", d.good), tarFile("disk//disk.img", d.bad)))}, "twice"},
		{"disk/../disk", []testLayer{plainLayer(tarOf(t, tarFile("disk/disk.img", d.good), tarFile("disk/../disk/disk.img", d.bad)))}, "twice"},
		{"absolute /disk", []testLayer{plainLayer(tarOf(t, tarFile("disk/disk.img", d.good), tarFile("/disk/disk.img", d.bad)))}, "twice"},
		{"../disk above the root", []testLayer{plainLayer(tarOf(t, tarFile("../../disk/x.qcow2", d.bad)))}, "backing"},
		{"directory named disk.img", []testLayer{plainLayer(tarOf(t, tarDir("disk/disk.img/"), tarFile("disk/disk.img/x", d.good)))}, "directory"},
		{"PAX long name", []testLayer{plainLayer(tarOf(t, tarFile(long, d.bad)))}, "backing"},
		{"GNU long name", []testLayer{plainLayer(tarOf(t, tarEntry{name: long, typ: tar.TypeReg, body: d.bad, gnu: true}))}, "backing"},
		{"device in disk/", []testLayer{plainLayer(tarOf(t, tarEntry{name: "disk/disk.img", typ: tar.TypeChar}))}, "not a regular file"},
		{"disk a regular file", []testLayer{plainLayer(tarOf(t, tarFile("disk/disk.img", d.good))), plainLayer(tarOf(t, tarFile("disk", []byte("x"))))}, "not a directory"},
		{"unknown layer media type", []testLayer{plainLayer(tarOf(t, tarFile("disk/disk.img", d.good))), {"application/x-custom", tarOf(t, tarFile("opt/x", []byte("x")))}}, "not an image layer"},
		{"tar layer beside a disk-typed layer", []testLayer{plainLayer(tarOf(t, tarFile("disk/disk.img", d.bad))), {"application/vnd.diskimage.qcow2", d.good}}, "backing"},
		{"corrupt gzip layer", []testLayer{plainLayer(tarOf(t, tarFile("disk/disk.img", d.good))), {v1.MediaTypeImageLayerGzip, append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte{7}, 100)...)}}, "cannot read"},
		{"truncated layer", []testLayer{plainLayer(tarOf(t, tarFile("disk/disk.img", d.good))), plainLayer(tarOf(t, tarFile("opt/x", bytes.Repeat([]byte{1}, 4096)))[:1500])}, "cannot read"},
		{"whiteout in the layer that wrote", []testLayer{plainLayer(tarOf(t, tarFile("disk/a.qcow2", d.good), tarFile("disk/.wh.a.qcow2", nil), tarFile("disk/b.qcow2", d.good2)))}, "whiteout"},
		{"plain tar starting like bzip2", []testLayer{plainLayer(tarOf(t, tarFile("BZh91AY&SY", []byte("x")), tarFile("disk/disk.img", d.bad)))}, "backing"},
		{"opaque root keeps this layer's symlink", []testLayer{plainLayer(tarOf(t, tarSymlink("a", "disk"), tarFile(".wh..wh..opq", nil), tarFile("a/evil.qcow2", d.bad)))}, "symlink"},
		{"whiteout keeps this layer's symlink", []testLayer{plainLayer(tarOf(t, tarSymlink("a", "disk"), tarFile(".wh.a", nil), tarFile("a/evil.qcow2", d.bad)))}, "symlink"},
		{"hardlink to a symlink to disk/", []testLayer{plainLayer(tarOf(t, tarSymlink("a", "disk"), tarEntry{name: "b", typ: tar.TypeLink, link: "a"}, tarFile("b/evil.qcow2", d.bad)))}, "symlink"},
		{"unsafe disk whited out later", []testLayer{plainLayer(tarOf(t, tarFile("disk/old.qcow2", d.bad))), plainLayer(tarOf(t, tarFile("disk/.wh.old.qcow2", nil), tarFile("disk/new.qcow2", d.good)))}, "backing"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := fmt.Sprintf("a/hostile%d", i)
			status, body := s.pushRunnable(repo, "v1", c.layers...)
			if status != 400 || !bytes.Contains(body, []byte("MANIFEST_INVALID")) || !bytes.Contains(body, []byte(c.reason)) {
				t.Fatalf("push: %d %s (want MANIFEST_INVALID naming %q)", status, body, c.reason)
			}
			if r, _ := s.do("GET", "/v2/"+repo+"/manifests/v1", nil, s.as("member-a")...); r.StatusCode != 404 {
				t.Fatalf("refused manifest stored: %d", r.StatusCode)
			}
			for _, img := range s.images(t) {
				if img.Repository == repo {
					t.Fatalf("refused push left an image record: %+v", img)
				}
			}
		})
	}
}

// TestAcceptedContainerDisksUnpack: each containerDisk the registry accepts, pulled back and
// unpacked as containerd does (layers in order, whiteouts, the last entry winning), leaves one
// safe disk file in disk/, and the image record (for a plain tar layer) describes it and
// downloads it.
func TestAcceptedContainerDisksUnpack(t *testing.T) {
	s := newSecured(t)
	d := newDiskFiles(t)
	long := "disk/" + strings.Repeat("p", 140) + ".qcow2"
	cases := []struct {
		name     string
		layers   []testLayer
		recorded bool // a plain tar layer: the image is read in place
	}{
		{"one plain layer", []testLayer{plainLayer(tarOf(t, tarDir("disk/"), tarFile("disk/disk.qcow2", d.good)))}, true},
		{"disk in the second layer", []testLayer{plainLayer(tarOf(t, tarDir("usr/bin/"), tarSymlink("bin", "usr/bin"), tarFile("etc/hostname", []byte("vm\n")))),
			plainLayer(tarOf(t, tarDir("./disk/"), tarFile("./disk/disk.qcow2", d.good2)))}, true},
		{"whiteout then a new disk", []testLayer{plainLayer(tarOf(t, tarFile("disk/old.qcow2", d.good))),
			plainLayer(tarOf(t, tarFile("disk/.wh.old.qcow2", nil), tarFile("disk/new.qcow2", d.good2)))}, true},
		{"opaque directory", []testLayer{plainLayer(tarOf(t, tarFile("disk/a.qcow2", d.good))),
			plainLayer(tarOf(t, tarDir("disk/"), tarFile("disk/.wh..wh..opq", nil), tarFile("disk/b.qcow2", d.good2)))}, true},
		{"PAX long name", []testLayer{plainLayer(tarOf(t, tarFile(long, d.good)))}, true},
		{"gzip layer", []testLayer{{v1.MediaTypeImageLayerGzip, gzipOf(tarOf(t, tarFile("disk/disk.qcow2", d.good)))}}, false},
		{"zstd layer", []testLayer{{v1.MediaTypeImageLayerZstd, zstdOf(tarOf(t, tarFile("disk/disk.qcow2", d.good2)))}}, false},
		{"an ordinary image", []testLayer{plainLayer(tarOf(t, tarFile("etc/os-release", []byte("ID=x\n")))), {v1.MediaTypeImageLayerGzip, []byte("not a tar")}}, false},
	}
	ctx := context.Background()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := fmt.Sprintf("a/ok%d", i)
			if status, body := s.pushRunnable(repo, "v1", c.layers...); status != 201 {
				t.Fatalf("push: %d %s", status, body)
			}
			root := s.pullAndUnpack(t, repo, "v1")
			var recs []catalog.Image
			for _, img := range s.images(t) {
				if img.Repository == repo {
					recs = append(recs, img)
				}
			}
			if c.name == "an ordinary image" {
				if _, err := os.Lstat(filepath.Join(root, "disk")); !errors.Is(err, os.ErrNotExist) || len(recs) != 0 {
					t.Fatalf("ordinary image: disk/ %v, records %d", err, len(recs))
				}
				return
			}
			file, report := onlyDisk(t, root)
			if (len(recs) == 1) != c.recorded || len(recs) > 1 {
				t.Fatalf("%d image records, want recorded=%v", len(recs), c.recorded)
			}
			if !c.recorded {
				return
			}
			img := recs[0]
			got, _ := os.ReadFile(file)
			md5sum, sha := md5.Sum(got), sha256.Sum256(got)
			if *img.Name != repo+":v1" || *img.Size != int64(len(got)) || *img.DiskFormat != report.Format ||
				*img.VirtualSize != report.VirtualSize || *img.Checksum != hex.EncodeToString(md5sum[:]) || *img.HashValue != hex.EncodeToString(sha[:]) {
				t.Fatalf("record %+v does not describe %s (%d bytes, %+v)", img, file, len(got), report)
			}
			// A containerDisk is not tagged with the image id: its reference is the digest.
			if ref := catalog.OCIReference(img); ref != repo+"@"+img.Reference {
				t.Fatalf("reference %q, want %s@%s", ref, repo, img.Reference)
			}
			s.requireResolves(t, catalog.OCIReference(img), s.as("member-a"))
			_, rd, _, err := s.catalog.Open(ctx, s.scoped(t, "member-a", "a"), img.ID)
			if err != nil {
				t.Fatal(err)
			}
			dl, _ := io.ReadAll(rd)
			rd.Close()
			if !bytes.Equal(dl, got) {
				t.Fatal("the image download is not the unpacked disk")
			}
		})
	}
}

// onlyDisk returns the one file unpacking left in disk/ and its inspection, which must be safe.
func onlyDisk(t *testing.T, root string) (string, diskformat.Report) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, "disk"))
	if err != nil || len(ents) != 1 || !ents[0].Type().IsRegular() {
		t.Fatalf("disk/ after unpacking: %v %v", ents, err)
	}
	file := filepath.Join(root, "disk", ents[0].Name())
	report, err := diskformat.InspectFile(file)
	if err != nil || !report.Safe {
		t.Fatalf("unpacked disk: %+v %v", report, err)
	}
	return file, report
}

// pullAndUnpack pulls repo:tag through the Registry API and unpacks its layers into a new
// directory as containerd's applier does.
func (s *secured) pullAndUnpack(t *testing.T, repo, tag string) string {
	t.Helper()
	hdr := s.as("member-a")
	_, body := s.do("GET", "/v2/"+repo+"/manifests/"+tag, nil, append(hdr, "Accept", v1.MediaTypeImageManifest)...)
	var m v1.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, l := range m.Layers {
		r, blob := s.do("GET", "/v2/"+repo+"/blobs/"+l.Digest.String(), nil, hdr...)
		if r.StatusCode != 200 {
			t.Fatalf("pull layer: %d", r.StatusCode)
		}
		if err := applyLayer(root, blob); err != nil {
			t.Logf("layer %s not applied: %v", l.Digest, err) // containerd would fail too
		}
	}
	return root
}

// applyLayer unpacks one layer blob into root: compression found from the bytes, names
// clamped to root, whatever is at a name removed first (the last entry wins), .wh. files
// removing what lower layers left, .wh..wh..opq emptying a directory of lower entries.
func applyLayer(root string, blob []byte) error {
	var src io.Reader = bytes.NewReader(blob)
	switch {
	case bytes.HasPrefix(blob, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(src)
		if err != nil {
			return err
		}
		src = gz
	case bytes.HasPrefix(blob, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(src)
		if err != nil {
			return err
		}
		defer zr.Close()
		src = zr
	}
	written := map[string]bool{}
	tr := tar.NewReader(src)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean("/" + h.Name)
		target := filepath.Join(root, name)
		dirName, base := path.Split(name)
		switch {
		case base == ".wh..wh..opq":
			ents, _ := os.ReadDir(filepath.Join(root, dirName))
			for _, e := range ents {
				if p := path.Join(dirName, e.Name()); !written[p] {
					os.RemoveAll(filepath.Join(root, p))
				}
			}
			continue
		case strings.HasPrefix(base, ".wh."):
			os.RemoveAll(filepath.Join(root, dirName, base[len(".wh."):]))
			continue
		}
		written[name] = true
		if fi, err := os.Lstat(target); err == nil && !(fi.IsDir() && h.Typeflag == tar.TypeDir) {
			os.RemoveAll(target)
		}
		os.MkdirAll(filepath.Dir(target), 0o755)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o755)
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, target)
		case tar.TypeReg:
			err = writeFile(target, tr)
		}
		if err != nil {
			return err
		}
	}
}

func writeFile(name string, r io.Reader) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// TestArtifactDiskLayers: an artifact's every disk layer is checked, pushed by oras and by
// hand; several disks are refused (an image is one disk); one disk beside other files is the
// image, and oras pulls back that same safe disk.
func TestArtifactDiskLayers(t *testing.T) {
	s := newSecured(t)
	oras := testenv.RequireTool(t, "oras")
	dir := t.TempDir()
	good, bad := qcow2Pair(t, "16M")
	good2, _ := qcow2Pair(t, "32M")
	for name, src := range map[string]string{"good.qcow2": good, "bad.qcow2": bad, "data.qcow2": good2} {
		b, _ := os.ReadFile(src)
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "README.txt"), []byte("boot with virtio\n"), 0o644)
	host := strings.TrimPrefix(s.srv.URL, "http://")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(oras, append(args, "--plain-http", "--no-tty", "-u", "member-a", "-p", s.users["member-a"])...)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(dir, "docker"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	push := func(tag string, files ...string) (string, error) {
		return run(append([]string{"push", "--artifact-type", "application/vnd.example.vm", host + "/a/vm:" + tag}, files...)...)
	}
	for tag, c := range map[string]struct {
		files []string
		why   string // what oras shows of the refusal
	}{
		"unsafe-second": {[]string{"README.txt", "bad.qcow2"}, "manifest invalid: layer bad.qcow2: image failed safety checks: qcow2: image has a backing file"},
		"unsafe-first":  {[]string{"bad.qcow2", "good.qcow2"}, "manifest invalid: layer bad.qcow2: image failed safety checks"},
		"unsafe-typed":  {[]string{"README.txt", "bad.qcow2:application/vnd.diskimage.qcow2"}, "manifest invalid: layer bad.qcow2: image failed safety checks"},
		"two-disks":     {[]string{"good.qcow2", "data.qcow2"}, "manifest invalid: artifact with 2 disks"},
	} {
		out, err := push(tag, c.files...)
		if err == nil || !strings.Contains(out, c.why) {
			t.Fatalf("oras push %s: %v\n%s", tag, err, out)
		}
		if r, _ := s.do("GET", "/v2/a/vm/manifests/"+tag, nil, s.as("member-a")...); r.StatusCode != 404 {
			t.Fatalf("%s: refused manifest stored: %d", tag, r.StatusCode)
		}
	}
	if strings.Contains(fmt.Sprint(s.images(t)), "qcow2") || len(s.images(t)) != 0 {
		t.Fatalf("refused pushes left image records: %+v", s.images(t))
	}
	// By hand: the unsafe disk is typed by media type only, after a safe non-disk layer.
	hdr := s.as("member-a")
	badBytes, _ := os.ReadFile(bad)
	ld1 := s.pushBlobAs("a/vm", []byte("notes"), hdr)
	ld2 := s.pushBlobAs("a/vm", badBytes, hdr)
	cd := s.pushBlobAs("a/vm", []byte("{}"), hdr)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"artifactType":"application/vnd.example.vm","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[{"mediaType":"text/plain","digest":%q,"size":5},{"mediaType":"application/vnd.diskimage.qcow2","digest":%q,"size":%d}]}`,
		v1.MediaTypeImageManifest, cd, ld1, ld2, len(badBytes))
	r, body := s.do("PUT", "/v2/a/vm/manifests/hand", []byte(m), append(hdr, "Content-Type", v1.MediaTypeImageManifest)...)
	s.expect(r, body, 400, CodeManifestInvalid)
	if len(s.images(t)) != 0 {
		t.Fatal("hand-made refused push left an image record")
	}
	// A disk-typed layer under an image config is still a disk artifact.
	goodBytes, _ := os.ReadFile(good)
	if status, body := s.pushRunnable("a/typed", "v1", testLayer{"application/vnd.diskimage.qcow2", goodBytes}); status != 201 {
		t.Fatalf("disk-typed layer under an image config: %d %s", status, body)
	}
	if imgs := s.images(t); len(imgs) != 1 || imgs[0].Repository != "a/typed" || *imgs[0].DiskFormat != "qcow2" {
		t.Fatalf("records: %+v", imgs)
	}
	if err := s.catalog.Delete(context.Background(), s.scoped(t, "member-a", "a"), s.images(t)[0].ID); err != nil {
		t.Fatal(err)
	}
	// Files titled .img beside others are files, not raw disks (a kernel and an initrd).
	os.WriteFile(filepath.Join(dir, "kernel.img"), bytes.Repeat([]byte{0x90}, 4096), 0o644)
	os.WriteFile(filepath.Join(dir, "initrd.img"), bytes.Repeat([]byte{0x1b}, 4096), 0o644)
	if out, err := push("boot", "kernel.img", "initrd.img"); err != nil || len(s.images(t)) != 0 {
		t.Fatalf("oras push of kernel and initrd: %v, %d records\n%s", err, len(s.images(t)), out)
	}
	// One disk beside a README: the disk is the image; oras pulls the same safe bytes.
	if out, err := push("ok", "README.txt", "good.qcow2"); err != nil {
		t.Fatalf("oras push: %v\n%s", err, out)
	}
	imgs := s.images(t)
	if len(imgs) != 1 || *imgs[0].Name != "a/vm:ok" || *imgs[0].DiskFormat != "qcow2" || *imgs[0].VirtualSize != 16<<20 {
		t.Fatalf("records: %+v", imgs)
	}
	if out, err := run("pull", "-o", "pulled", host+"/a/vm:ok"); err != nil {
		t.Fatalf("oras pull: %v\n%s", err, out)
	}
	pulled := filepath.Join(dir, "pulled", "good.qcow2")
	report, err := diskformat.InspectFile(pulled)
	got, _ := os.ReadFile(pulled)
	sha := sha256.Sum256(got)
	if err != nil || !report.Safe || *imgs[0].Size != int64(len(got)) || *imgs[0].HashValue != hex.EncodeToString(sha[:]) {
		t.Fatalf("pulled disk: %+v %v; record %+v", report, err, imgs[0])
	}
}

// TestCopiedContainerDiskView: the containerDisk the catalog makes for an uploaded qcow2 (a
// derived layer: tar header, the disk blob, padding) pushed again under a new tag is read
// through every layer like any push, accepted, and its record downloads the same disk.
func TestCopiedContainerDiskView(t *testing.T) {
	s := newSecured(t)
	ctx := context.Background()
	pr := s.scoped(t, "member-a", "a")
	good, _ := qcow2Pair(t, "16M")
	disk, _ := os.ReadFile(good)
	name, format, bare := "Golden", "qcow2", "bare"
	img, err := s.catalog.Create(ctx, pr, catalog.NewImage{Name: &name, DiskFormat: &format, ContainerFormat: &bare})
	if err != nil {
		t.Fatal(err)
	}
	if img, err = s.catalog.Upload(ctx, pr, img.ID, bytes.NewReader(disk), int64(len(disk))); err != nil {
		t.Fatal(err)
	}
	hdr := s.as("member-a")
	_, body := s.do("GET", "/v2/"+img.Repository+"/manifests/"+img.ID, nil, append(hdr, "Accept", v1.MediaTypeImageIndex)...)
	var idx v1.Index
	json.Unmarshal(body, &idx)
	if len(idx.Manifests) == 0 || idx.Manifests[0].Platform == nil {
		t.Fatalf("view: %s", body)
	}
	_, m := s.do("GET", "/v2/"+img.Repository+"/manifests/"+idx.Manifests[0].Digest.String(), nil, append(hdr, "Accept", v1.MediaTypeImageManifest)...)
	r, body := s.do("PUT", "/v2/"+img.Repository+"/manifests/copy", m, append(hdr, "Content-Type", v1.MediaTypeImageManifest)...)
	if r.StatusCode != 201 {
		t.Fatalf("push of the containerDisk view: %d %s", r.StatusCode, body)
	}
	root := s.pullAndUnpack(t, img.Repository, "copy")
	file, _ := onlyDisk(t, root)
	got, _ := os.ReadFile(file)
	if !bytes.Equal(got, disk) {
		t.Fatal("unpacked containerDisk view differs from the uploaded disk")
	}
	for _, rec := range s.images(t) {
		_, rd, _, err := s.catalog.Open(ctx, pr, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		dl, _ := io.ReadAll(rd)
		rd.Close()
		if !bytes.Equal(dl, disk) {
			t.Fatalf("image %s (%s) downloads other bytes", rec.ID, *rec.Name)
		}
	}
}
