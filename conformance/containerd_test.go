package conformance

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/internal/testenv"
)

// qemuUID is the uid and gid KubeVirt runs qemu as; a containerDisk's files belong to it.
const qemuUID = 107

// TestContainerd pushes a KubeVirt containerDisk (one uncompressed tar layer holding disk/ and
// disk/disk.img, a qcow2, owned by 107) through the Registry API, alone and inside a VM-image
// style index (the containerDisk for linux/amd64 beside a disk artifact without platform),
// pulls both with a private containerd (`ctr images pull --plain-http`), mounts the index with
// the native snapshotter and checks that /disk/disk.img is byte-identical with its owner and
// modes intact.
func TestContainerd(t *testing.T) {
	t.Parallel()
	qemuImg := testenv.RequireTool(t, "qemu-img")
	eachBackend(t, func(t *testing.T, srv *testenv.Server) {
		dir := t.TempDir()
		disk := makeQcow2(t, qemuImg, dir)
		layer := buildTar(t, []tarEntry{
			{Name: "disk/", Dir: true, Mode: 0o555, UID: qemuUID, GID: qemuUID},
			{Name: "disk/disk.img", Mode: 0o444, UID: qemuUID, GID: qemuUID, Data: disk},
		})
		img := newImage(t, []blob{{ocispec.MediaTypeImageLayer, layer}}, []digest.Digest{digest.FromBytes(layer)})
		repo := "vms/cirros"
		imgDigest := img.push(t, srv.URL(), repo, "containerdisk")
		indexDigest := pushVMIndex(t, srv.URL(), repo, "v1", img, disk)

		ctd := testenv.StartContainerd(t)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("containerd log:\n%s", tail(ctd.Log(), 80))
			}
		})
		ctr := func(args ...string) string {
			t.Helper()
			out, err := ctd.Ctr(args...)
			t.Logf("$ ctr %s", strings.Join(args, " "))
			if err != nil {
				t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, tail(out, 40))
			}
			return out
		}
		pull := func(ref string) {
			ctr("images", "pull", "--plain-http", "--snapshotter", "native", "--platform", "linux/amd64", ref)
		}
		manifestRef := srv.RegistryAddr + "/" + repo + ":containerdisk"
		indexRef := srv.RegistryAddr + "/" + repo + ":v1"
		pull(manifestRef)
		pull(indexRef)
		listed := ctr("images", "ls")
		for ref, d := range map[string]digest.Digest{manifestRef: imgDigest, indexRef: indexDigest} {
			if !hasImageLine(listed, ref, d) {
				t.Errorf("ctr images ls has no %s at %s:\n%s", ref, d, listed)
			}
		}

		target := filepath.Join(dir, "mnt")
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { testenv.UnmountAll(t, target) })
		how, err := ctd.MountImage(indexRef, "linux/amd64", chainID([]digest.Digest{digest.FromBytes(layer)}).String(), target)
		if err != nil {
			t.Fatalf("mount %s: %v", indexRef, err)
		}
		t.Logf("mounted %s at %s with %s", indexRef, target, how)
		got, err := os.ReadFile(filepath.Join(target, "disk", "disk.img"))
		if err != nil || !bytes.Equal(got, disk) {
			t.Errorf("mounted /disk/disk.img: %d bytes (%v), want the %d bytes pushed", len(got), err, len(disk))
		}
		requireOwnerMode(t, filepath.Join(target, "disk"), qemuUID, 0o555|os.ModeDir)
		requireOwnerMode(t, filepath.Join(target, "disk", "disk.img"), qemuUID, 0o444)
		if entries, _ := os.ReadDir(filepath.Join(target, "disk")); len(entries) != 1 {
			t.Errorf("/disk holds %d entries, want exactly disk.img", len(entries))
		}
		if err := ctd.UnmountImage(target); err != nil {
			t.Fatal(err)
		}
		if entries, _ := os.ReadDir(target); len(entries) != 0 {
			t.Errorf("%s still holds %d entries after unmount", target, len(entries))
		}
		ctd.Stop()
		if ctd.Running() {
			t.Errorf("containerd still running after Stop")
		}
	})
}

// makeQcow2 converts 2 MiB of random data into a qcow2 image with qemu-img and returns its
// bytes.
func makeQcow2(t *testing.T, qemuImg, dir string) []byte {
	t.Helper()
	raw := filepath.Join(dir, "disk.raw")
	writeFile(t, raw, randomBytes(2<<20))
	qcow := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command(qemuImg, "convert", "-f", "raw", "-O", "qcow2", raw, qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	b, err := os.ReadFile(qcow)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("QFI\xfb")) {
		t.Fatalf("qemu-img wrote no qcow2 (%d bytes)", len(b))
	}
	return b
}

// vmImageArtifactType and qcow2LayerType are what the VM-image index of DESIGN.md uses for the
// disk artifact.
const (
	vmImageArtifactType = "application/vnd.xloud.vm-image.v1"
	qcow2LayerType      = "application/vnd.diskimage.qcow2"
)

// pushVMIndex pushes an index shaped like the server's VM-image index: the containerDisk
// manifest for linux/amd64 and a disk artifact manifest (no platform) whose one layer is the
// qcow2 itself. It returns the index digest.
func pushVMIndex(t *testing.T, base, repo, tag string, containerDisk ociImage, disk []byte) digest.Digest {
	t.Helper()
	config := []byte(`{"disk_format":"qcow2","name":"cirros"}`)
	pushBlob(t, base, repo, config)
	pushBlob(t, base, repo, disk)
	layer := descriptorOf(qcow2LayerType, disk)
	layer.Annotations = map[string]string{ocispec.AnnotationTitle: "disk.img"}
	artifact := mustJSON(t, ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: vmImageArtifactType,
		Config:       descriptorOf("application/vnd.xloud.vm-image.config.v1+json", config),
		Layers:       []ocispec.Descriptor{layer},
	})
	pushManifest(t, base, repo, digest.FromBytes(artifact).String(), ocispec.MediaTypeImageManifest, artifact)
	cd := descriptorOf(ocispec.MediaTypeImageManifest, containerDisk.Manifest)
	cd.Platform = &ocispec.Platform{Architecture: "amd64", OS: "linux"}
	art := descriptorOf(ocispec.MediaTypeImageManifest, artifact)
	art.ArtifactType = vmImageArtifactType
	index := mustJSON(t, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{cd, art},
	})
	return pushManifest(t, base, repo, tag, ocispec.MediaTypeImageIndex, index)
}

// chainID is the identity of a stack of layers (image-spec config.md, "Layer ChainID").
func chainID(diffIDs []digest.Digest) digest.Digest {
	id := diffIDs[0]
	for _, d := range diffIDs[1:] {
		id = digest.FromString(id.String() + " " + d.String())
	}
	return id
}

// hasImageLine reports whether `ctr images ls` output lists ref at digest d.
func hasImageLine(out, ref string, d digest.Digest) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == ref && f[2] == d.String() {
			return true
		}
	}
	return false
}

// requireOwnerMode checks a file's uid, gid and mode.
func requireOwnerMode(t *testing.T, path string, id uint32, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("stat %s: %v", path, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != id || st.Gid != id || fi.Mode() != mode {
		t.Errorf("%s: uid %d gid %d mode %v, want %d/%d %v", path, st.Uid, st.Gid, fi.Mode(), id, id, mode)
	}
}
