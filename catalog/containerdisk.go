package catalog

import (
	"archive/tar"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/diskformat"
	"github.com/xloud/xloud-image/manifest"
	"github.com/xloud/xloud-image/storage"
)

// tarLayerTypes are the layer media types of a runnable image that containerd unpacks (OCI
// and Docker, plain, gzip and zstd, distributable or not). A containerDisk with any other
// layer is refused: what it leaves at disk/ depends on the runtime.
var tarLayerTypes = map[string]bool{
	v1.MediaTypeImageLayer: true, v1.MediaTypeImageLayerGzip: true, v1.MediaTypeImageLayerZstd: true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar":      true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": true,
	"application/vnd.docker.image.rootfs.diff.tar":                 true,
	"application/vnd.docker.image.rootfs.diff.tar.gzip":            true,
	"application/vnd.docker.image.rootfs.diff.tar.zstd":            true,
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":    true,
}

// zstdMaxWindow bounds the memory a zstd layer may ask for (zstd's own CLI default).
const zstdMaxWindow = 128 << 20

// errUnreadable marks a layer whose tar the registry cannot read: harmless in an ordinary
// image, a refusal in a containerDisk.
var errUnreadable = errors.New("unreadable layer")

// runnableLayers returns the layers of a runnable image manifest (an image config, no
// artifact type, no subject): a candidate containerDisk (KubeVirt's:
// what unpacking leaves at disk/ is the VM's disk).
func runnableLayers(m *manifest.Manifest, content []byte) ([]v1.Descriptor, bool) {
	if (m.MediaType != manifest.MediaTypeOCIManifest && m.MediaType != manifest.MediaTypeDockerManifest) || m.Subject != nil {
		return nil, false
	}
	var full v1.Manifest
	if err := jsonUnmarshal(content, &full); err != nil || full.ArtifactType != "" || len(full.Layers) == 0 {
		return nil, false
	}
	if full.Config.MediaType != v1.MediaTypeImageConfig && full.Config.MediaType != "application/vnd.docker.container.image.v1+json" {
		return nil, false
	}
	return full.Layers, true
}

// countingReader counts the position of what was read or seeked through it.
type countingReader struct {
	r io.ReadSeeker
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Seek lets archive/tar skip file bodies of a plain layer without reading them.
func (c *countingReader) Seek(off int64, whence int) (int64, error) {
	n, err := c.r.Seek(off, whence)
	if err == nil {
		c.n = n
	}
	return n, err
}

// pushContainerDisk inspects a pushed runnable image as its runtime would unpack it: every
// layer in order, whatever its compression. An image that puts nothing at disk/ is an ordinary
// container image. Otherwise every file ever written under disk/ is inspected and must be
// safe, the layers must all be readable, and exactly one file must remain, directly in disk/,
// with no link, duplicate or ambiguous whiteout on the way. That file in a plain tar layer
// becomes an image read in place; in a compressed layer it is checked, not catalogued.
func (c *Catalog) pushContainerDisk(ctx context.Context, pr auth.Principal, repo string, d digest.Digest, name string, layers []v1.Descriptor) (func(context.Context) error, error) {
	u := newUnpackTree()
	var unreadable []string
	for i := range layers {
		u.startLayer()
		err := c.walkLayer(ctx, repo, i, &layers[i], u)
		if errors.Is(err, errUnreadable) {
			unreadable = append(unreadable, err.Error())
		} else if err != nil {
			return nil, err
		}
		if !tarLayerTypes[layers[i].MediaType] {
			unreadable = append(unreadable, fmt.Sprintf("layer %d: media type %q is not an image layer", i, layers[i].MediaType))
		}
	}
	disk, err := u.theDisk(unreadable)
	if err != nil || disk == nil || disk.offset < 0 {
		return nil, err
	}
	return func(ctx context.Context) error { return c.recordPushed(ctx, pr, repo, d, name, *disk) }, nil
}

// theDisk is the one disk file unpacking leaves, nil for an ordinary container image.
func (u *unpackTree) theDisk(unreadable []string) (*pushedDisk, error) {
	switch {
	case !u.touched:
		return nil, nil
	case len(unreadable) > 0:
		return nil, errorf(BadData, "containerDisk with layers the registry cannot read: %s", strings.Join(unreadable, "; "))
	case len(u.disks) > 1:
		names := make([]string, 0, len(u.disks))
		for p := range u.disks {
			names = append(names, p)
		}
		slices.Sort(names)
		return nil, errorf(BadData, "containerDisk with %d files in %s (%s): KubeVirt takes one", len(names), diskRoot, strings.Join(names, ", "))
	}
	for _, disk := range u.disks {
		return disk, nil
	}
	return nil, nil // disk/ holds no file: not a containerDisk
}

// walkLayer applies layer i to u, inspecting each file written under disk/.
func (c *Catalog) walkLayer(ctx context.Context, repo string, i int, l *v1.Descriptor, u *unpackTree) error {
	f, _, err := c.store.OpenBlob(storage.WithoutCacheFill(ctx), repo, l.Digest)
	if err != nil {
		return fmt.Errorf("%w %d (%s): not in the repository", errUnreadable, i, l.Digest)
	}
	defer f.Close()
	counted := &countingReader{r: f}
	err = c.walkTar(counted, i, l, u, false)
	if errors.Is(err, errNotBzip2) {
		// "BZh" may start a plain tar's first name: containerd reads such a layer as a tar.
		if _, err := counted.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("read layer %s: %w", l.Digest, err)
		}
		err = c.walkTar(counted, i, l, u, true)
	}
	return err
}

// errXZ refuses an xz layer outright: CRI-O would unpack it, and the registry cannot look
// inside to tell whether it is a containerDisk.
var errXZ = errors.New("xz compression, which the registry does not read")

// errNotBzip2 marks a layer that starts like bzip2 but is not.
var errNotBzip2 = errors.New("not bzip2")

// walkTar reads the layer's tar from counted (at its start) through its compression.
func (c *Catalog) walkTar(counted *countingReader, i int, l *v1.Descriptor, u *unpackTree, plain bool) error {
	src, compressed, err := decompress(counted, plain)
	if errors.Is(err, errXZ) {
		return errorf(BadData, "layer %d (%s): %v", i, l.Digest, err)
	}
	if err != nil {
		return fmt.Errorf("%w %d (%s): %v", errUnreadable, i, l.Digest, err)
	}
	defer src.Close()
	tr := tar.NewReader(src)
	for first := true; ; first = false {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var bz bzip2.StructuralError
		if first && errors.As(err, &bz) {
			return errNotBzip2
		}
		if err != nil {
			return fmt.Errorf("%w %d (%s): %v", errUnreadable, i, l.Digest, err)
		}
		if err := u.apply(tr, hdr, counted, compressed, l); err != nil {
			return err
		}
	}
}

// decompress returns the tar stream of a layer, its compression detected from the bytes as
// containerd and containers/image do, whatever the media type claims.
func decompress(r *countingReader, plain bool) (io.ReadCloser, bool, error) {
	magic := make([]byte, 6)
	k, _ := io.ReadFull(r, magic)
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, false, err
	}
	switch magic = magic[:k]; {
	case plain:
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(r)
		return gz, true, err
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, true, err
		}
		return zr.IOReadCloser(), true, nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return io.NopCloser(bzip2.NewReader(r)), true, nil // CRI-O's containers/image reads bzip2
	case bytes.Equal(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, true, errXZ
	}
	return io.NopCloser(r), false, nil
}

// apply takes one tar entry into u and inspects it if it is a file under disk/.
func (u *unpackTree) apply(tr io.Reader, hdr *tar.Header, counted *countingReader, compressed bool, l *v1.Descriptor) error {
	name, p, err := u.place(hdr)
	if err != nil {
		return err
	}
	if wh, err := u.whiteout(p); wh || err != nil {
		return err
	}
	if err := u.entry(hdr, name, p); err != nil || !u.layer[p] {
		return err
	}
	disk, err := inspectEntry(tr, hdr, counted, compressed, l)
	if err != nil {
		return err
	}
	u.disks[p] = &disk
	return nil
}

// inspectEntry streams a disk file out of its tar entry through the inspector and hashes.
// Its offset is -1 in a compressed layer, which cannot be read in place.
func inspectEntry(tr io.Reader, hdr *tar.Header, counted *countingReader, compressed bool, l *v1.Descriptor) (pushedDisk, error) {
	offset := counted.n
	in := diskformat.NewInspector()
	md5h, shah := md5.New(), sha256.New()
	if _, err := io.Copy(io.MultiWriter(in, md5h, shah), tr); err != nil {
		return pushedDisk{}, errorf(BadData, "containerDisk %s: reading %s: %v", l.Digest, hdr.Name, err)
	}
	if !compressed && counted.n-offset != hdr.Size {
		return pushedDisk{}, errorf(BadData, "containerDisk %s: %s is stored sparse", l.Digest, hdr.Name)
	}
	report := in.Report()
	if err := report.Err(); err != nil {
		return pushedDisk{}, errorf(BadData, "containerDisk %s: %v", hdr.Name, err)
	}
	disk := pushedDisk{layer: l, name: path.Base(hdr.Name), format: report.Format, report: report,
		size: hdr.Size, offset: offset, md5: hex.EncodeToString(md5h.Sum(nil)), sha: hex.EncodeToString(shah.Sum(nil))}
	if compressed {
		disk.offset = -1
	}
	if disk.format == diskformat.GPT { // Glance has no gpt disk_format: a partitioned raw disk
		disk.format = diskformat.Raw
	}
	return disk, nil
}
