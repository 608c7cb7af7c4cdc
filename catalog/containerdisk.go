package catalog

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/diskformat"
	"github.com/xloud/xloud-image/manifest"
)

// Layer media types a containerDisk may use.
const (
	dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	dockerLayerTar  = "application/vnd.docker.image.rootfs.diff.tar"
)

// containerDiskLayer returns the one tar layer of a runnable image manifest: a candidate
// containerDisk (KubeVirt's: one layer holding disk/<file>).
func containerDiskLayer(m *manifest.Manifest, content []byte) (*v1.Descriptor, bool) {
	if (m.MediaType != manifest.MediaTypeOCIManifest && m.MediaType != manifest.MediaTypeDockerManifest) || m.Subject != nil {
		return nil, false
	}
	var full v1.Manifest
	if err := jsonUnmarshal(content, &full); err != nil || len(full.Layers) != 1 || full.ArtifactType != "" {
		return nil, false
	}
	if full.Config.MediaType != v1.MediaTypeImageConfig && full.Config.MediaType != "application/vnd.docker.container.image.v1+json" {
		return nil, false
	}
	switch l := full.Layers[0]; l.MediaType {
	case v1.MediaTypeImageLayer, v1.MediaTypeImageLayerGzip, dockerLayerGzip, dockerLayerTar:
		return &l, true
	}
	return nil, false
}

// countingReader counts what was read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// pushContainerDisk inspects the disk of a pushed containerDisk: the first regular file under
// disk/ in its layer. An unsafe disk refuses the push; a safe one in an uncompressed layer
// becomes an image read in place (a gzip layer cannot be read in place: it is checked, not
// catalogued). A layer without disk/ is an ordinary container image.
func (c *Catalog) pushContainerDisk(ctx context.Context, pr auth.Principal, repo string, d digest.Digest, layer *v1.Descriptor) (func(context.Context) error, error) {
	f, _, err := c.store.OpenBlob(ctx, repo, layer.Digest)
	if err != nil {
		return nil, nil // sparse: nothing to inspect
	}
	defer f.Close()
	counted := &countingReader{r: f}
	var src io.Reader = counted
	compressed := layer.MediaType == v1.MediaTypeImageLayerGzip || layer.MediaType == dockerLayerGzip
	if compressed {
		gz, err := gzip.NewReader(counted)
		if err != nil {
			return nil, nil // not gzip after all: not a containerDisk we can read
		}
		defer gz.Close()
		src = gz
	}
	tr := tar.NewReader(src)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, nil // not a tar: an ordinary layer
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		if hdr.Typeflag != tar.TypeReg || !strings.HasPrefix(name, "disk/") {
			continue
		}
		offset := counted.n
		in := diskformat.NewInspector()
		md5h, shah := md5.New(), sha256.New()
		if _, err := io.Copy(io.MultiWriter(in, md5h, shah), tr); err != nil {
			return nil, fmt.Errorf("read containerDisk %s: %w", layer.Digest, err)
		}
		report := in.Report()
		if err := report.Err(); err != nil {
			return nil, errorf(BadData, "containerDisk %s: %v", name, err)
		}
		if compressed {
			return nil, nil
		}
		disk := pushedDisk{layer: layer, name: name[len("disk/"):], format: report.Format, report: report,
			size: hdr.Size, offset: offset, md5: hex.EncodeToString(md5h.Sum(nil)), sha: hex.EncodeToString(shah.Sum(nil))}
		if disk.format == diskformat.GPT { // Glance has no gpt disk_format: a partitioned raw disk
			disk.format = diskformat.Raw
		}
		return func(ctx context.Context) error { return c.recordPushed(ctx, pr, repo, d, disk) }, nil
	}
}
