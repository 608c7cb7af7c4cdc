package manifest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// The VM-image index of DESIGN.md: one reference serves containerd/KubeVirt (the platform
// manifest, a containerDisk) and oras (the disk artifact, saved under its title).
const (
	ArtifactTypeVMImage = "application/vnd.xloud.vm-image.v1"
	MediaTypeVMConfig   = "application/vnd.xloud.vm-image.config.v1+json"
	// containerDisk files are owned by qemu (uid/gid 107) inside the guest launcher.
	qemuID = 107
)

// DiskMediaType names a disk file's format in a layer media type.
func DiskMediaType(format string) string { return "application/vnd.diskimage." + format }

// Descriptor builds a descriptor for content of mediaType.
func Descriptor(mediaType string, content []byte) v1.Descriptor {
	return v1.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(content), Size: int64(len(content))}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own well-formed structs are marshalled here
	}
	return b
}

// DiskArtifact is the artifact manifest holding the disk file as its one layer.
func DiskArtifact(config, disk v1.Descriptor, subject *v1.Descriptor, annotations map[string]string) []byte {
	m := v1.Manifest{
		MediaType: v1.MediaTypeImageManifest, ArtifactType: ArtifactTypeVMImage,
		Config: config, Layers: []v1.Descriptor{disk}, Subject: subject, Annotations: annotations,
	}
	m.SchemaVersion = 2
	return mustJSON(m)
}

// ContainerDiskTar returns the tar framing around a disk file of size bytes: the headers
// of disk/ and disk/disk.img before the data, and how many zero bytes follow it (padding to
// the block size and the end-of-archive blocks). The layer is prefix + disk + suffix.
func ContainerDiskTar(size int64, mod time.Time) (prefix []byte, suffix int64) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "disk/", Mode: 0o555, Uid: qemuID, Gid: qemuID, ModTime: mod, Format: tar.FormatPAX})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "disk/disk.img", Mode: 0o444, Size: size, Uid: qemuID, Gid: qemuID, ModTime: mod, Format: tar.FormatPAX})
	tw.Flush()
	pad := (512 - size%512) % 512
	return buf.Bytes(), pad + 1024
}

// ContainerDiskConfig is the OCI image config of a containerDisk whose one layer has diffID.
func ContainerDiskConfig(arch string, diffID digest.Digest, created time.Time) []byte {
	cfg := v1.Image{
		Created:  &created,
		Platform: v1.Platform{Architecture: arch, OS: "linux"},
		RootFS:   v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	}
	return mustJSON(cfg)
}

// ContainerDiskManifest is the runnable image manifest of a containerDisk.
func ContainerDiskManifest(config, layer v1.Descriptor) []byte {
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: config, Layers: []v1.Descriptor{layer}}
	m.SchemaVersion = 2
	return mustJSON(m)
}

// VMImageIndex lists the containerDisk (with its platform) and the disk artifact.
func VMImageIndex(containerDisk *v1.Descriptor, artifact v1.Descriptor, annotations map[string]string) []byte {
	var ms []v1.Descriptor
	if containerDisk != nil {
		ms = append(ms, *containerDisk)
	}
	ms = append(ms, artifact)
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: ms, Annotations: annotations}
	idx.SchemaVersion = 2
	return mustJSON(idx)
}
