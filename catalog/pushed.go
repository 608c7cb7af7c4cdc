package catalog

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/diskformat"
	"github.com/xloud/xloud-image/manifest"
	"github.com/xloud/xloud-image/storage/meta"
)

// The other direction of the translation: a VM disk pushed through the Registry API (an
// artifact whose one layer is a disk file) becomes an image record, active, owned by the
// repository's project, its format detected from the bytes. An unsafe disk is refused.

// diskLayer returns the layer of m that is a VM disk, if m is a disk artifact: one layer,
// no subject (signatures and SBOMs are not disks), and either a disk media type or a
// format the bytes will tell.
func diskLayer(m *manifest.Manifest, content []byte) (*v1.Descriptor, bool) {
	if m.MediaType != manifest.MediaTypeOCIManifest && m.MediaType != manifest.MediaTypeDockerManifest {
		return nil, false
	}
	if m.Subject != nil {
		return nil, false
	}
	var full v1.Manifest
	if err := jsonUnmarshal(content, &full); err != nil || len(full.Layers) != 1 {
		return nil, false
	}
	l := full.Layers[0]
	isArtifact := full.ArtifactType != "" || (full.Config.MediaType != v1.MediaTypeImageConfig &&
		full.Config.MediaType != "application/vnd.docker.container.image.v1+json")
	if strings.HasPrefix(l.MediaType, "application/vnd.diskimage.") || isArtifact {
		return &l, true
	}
	return nil, false
}

// declaredFormat is the format a layer's media type or title names, if any.
func declaredFormat(l *v1.Descriptor) string {
	if f, ok := strings.CutPrefix(l.MediaType, "application/vnd.diskimage."); ok {
		return f
	}
	switch ext := strings.TrimPrefix(path.Ext(l.Annotations[v1.AnnotationTitle]), "."); ext {
	case "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso", "raw":
		return ext
	case "img":
		return "raw"
	}
	return ""
}

// PushManifest inspects a manifest about to be stored through the Registry API. For a VM
// disk it checks the disk is safe (an error refuses the push) and returns a function that
// records the image once the manifest is stored; for other content it returns nil, nil.
func (c *Catalog) PushManifest(ctx context.Context, pr auth.Principal, repo string, d digest.Digest, m *manifest.Manifest, content []byte) (func(context.Context) error, error) {
	if layer, ok := containerDiskLayer(m, content); ok {
		return c.pushContainerDisk(ctx, pr, repo, d, layer)
	}
	layer, ok := diskLayer(m, content)
	if !ok {
		return nil, nil
	}
	f, _, err := c.store.OpenBlob(ctx, repo, layer.Digest)
	if err != nil {
		return nil, nil // a sparse push: nothing to inspect, not an image
	}
	defer f.Close()
	in := diskformat.NewInspector()
	md5h, shah := md5.New(), sha256.New()
	if _, err := io.Copy(io.MultiWriter(in, md5h, shah), f); err != nil {
		return nil, fmt.Errorf("inspect disk %s: %w", layer.Digest, err)
	}
	report := in.Report()
	declared := declaredFormat(layer)
	if declared == "" {
		switch report.Format {
		case diskformat.Raw, diskformat.GPT, diskformat.LUKS:
			return nil, nil // bytes that say nothing of being a disk: plain content
		}
		declared = report.Format
	}
	if err := diskformat.Verify(declared, report); err != nil {
		return nil, refusal(BadData, err)
	}
	sum := hex.EncodeToString(md5h.Sum(nil))
	sha := hex.EncodeToString(shah.Sum(nil))
	return func(ctx context.Context) error {
		return c.recordPushed(ctx, pr, repo, d, pushedDisk{layer: layer, name: layer.Annotations[v1.AnnotationTitle],
			format: declared, report: report, size: layer.Size, md5: sum, sha: sha})
	}, nil
}

// pushedDisk is what an inspected push learnt of its disk.
type pushedDisk struct {
	layer    *v1.Descriptor
	name     string
	format   string
	report   diskformat.Report
	size     int64 // of the disk file
	offset   int64 // of the disk file in the layer (a containerDisk's tar)
	md5, sha string
}

// recordPushed makes the image record of a pushed disk artifact (once per repository and
// manifest).
func (c *Catalog) recordPushed(ctx context.Context, pr auth.Principal, repo string, d digest.Digest, disk pushedDisk) error {
	proj, err := c.policy.RepositoryProject(ctx, repo)
	owner := proj.ID
	if err != nil {
		owner = pr.ProjectID // --auth none, or a repository named after no project
	}
	name := disk.name
	if name == "" {
		name = path.Base(repo)
	}
	now := c.Now().UTC().Truncate(1e9)
	size, algo, format, sum, sha := disk.size, "sha256", disk.format, disk.md5, disk.sha
	img := Image{
		ID: c.NewID(), Name: &name, Owner: owner, Status: StatusActive, Visibility: VisibilityShared,
		DiskFormat: &format, ContainerFormat: str("bare"), Size: &size, Checksum: &sum,
		HashAlgo: &algo, HashValue: &sha, Tags: []string{}, Properties: map[string]string{"xloud_source": "registry"},
		CreatedAt: now, UpdatedAt: now, Repository: repo, Reference: d.String(),
		DiskDigest: disk.layer.Digest.String(), DiskOffset: disk.offset, Pushed: true,
	}
	if disk.report.VirtualSize > 0 {
		img.VirtualSize = &disk.report.VirtualSize
	}
	known := false
	c.meta.View(ctx, func(tx meta.Tx) error {
		_, err := tx.Get(keyImageRef(repo, d.String()))
		known = err == nil
		return nil
	})
	if known {
		return nil // the same manifest pushed again
	}
	refs := []digest.Digest{d}
	if disk.offset == 0 && containerDiskFormat(img) {
		index, cd, err := c.containerDiskView(ctx, img, d, disk)
		if err != nil {
			return err
		}
		img.Reference = index.String()
		refs = append(refs, index, cd)
	}
	return c.meta.Update(ctx, func(tx meta.Tx) error {
		if _, err := tx.Get(keyImageRef(repo, d.String())); err == nil {
			return nil
		}
		for _, r := range refs {
			if err := tx.Put(keyImageRef(repo, r.String()), []byte(img.ID)); err != nil {
				return err
			}
		}
		return putImage(tx, nil, img)
	})
}

// containerDiskView gives a pushed qcow2 or raw disk artifact its containerDisk: an index
// tagged with the image id (the documented reference `<repo>:<image id>`) that lists a
// containerDisk made from the pushed disk blob (a derived blob, no copy) and the pushed
// artifact itself.
func (c *Catalog) containerDiskView(ctx context.Context, img Image, artifact digest.Digest, disk pushedDisk) (index, cd digest.Digest, err error) {
	rec, _, err := c.store.GetManifest(ctx, img.Repository, artifact)
	if err != nil {
		return "", "", err
	}
	doc, err := c.containerDisk(ctx, img, uploaded{repo: img.Repository, disk: disk.layer.Digest, size: disk.layer.Size})
	if err != nil {
		return "", "", err
	}
	if err := c.putManifest(ctx, img.Repository, doc.desc, doc.content, nil); err != nil {
		return "", "", err
	}
	artDesc := v1.Descriptor{MediaType: rec.MediaType, Digest: artifact, Size: rec.Size, ArtifactType: rec.ArtifactType}
	content := manifest.VMImageIndex(&doc.desc, artDesc, map[string]string{"io.xloud.image.id": img.ID})
	desc := manifest.Descriptor(v1.MediaTypeImageIndex, content)
	if err := c.putManifest(ctx, img.Repository, desc, content, []string{img.ID}); err != nil {
		return "", "", err
	}
	return desc.Digest, doc.desc.Digest, nil
}
