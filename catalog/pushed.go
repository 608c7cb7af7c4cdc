package catalog

import (
	"cmp"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/diskformat"
	"github.com/xloud/xloud-image/manifest"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// The other direction of the translation: a VM disk pushed through the Registry API (an
// artifact whose disk layer is a disk file) becomes an image record, active, owned by the
// repository's project, its format detected from the bytes. An unsafe disk is refused.

// diskMediaPrefix starts the layer media type that names a disk format.
const diskMediaPrefix = "application/vnd.diskimage."

// artifactLayers returns the layers of m if it may carry VM disks: no subject (signatures and
// SBOMs are not disks), and an artifact (artifactType or a config that is not an image's) or
// a layer with a disk media type.
func artifactLayers(m *manifest.Manifest, content []byte) ([]v1.Descriptor, bool) {
	if m.MediaType != manifest.MediaTypeOCIManifest && m.MediaType != manifest.MediaTypeDockerManifest {
		return nil, false
	}
	if m.Subject != nil {
		return nil, false
	}
	var full v1.Manifest
	if err := jsonUnmarshal(content, &full); err != nil {
		return nil, false
	}
	isArtifact := full.ArtifactType != "" || (full.Config.MediaType != v1.MediaTypeImageConfig &&
		full.Config.MediaType != "application/vnd.docker.container.image.v1+json")
	return full.Layers, isArtifact || slices.ContainsFunc(full.Layers, isDiskTyped)
}

// isDiskTyped reports a layer whose media type names a disk format.
func isDiskTyped(l v1.Descriptor) bool { return strings.HasPrefix(l.MediaType, diskMediaPrefix) }

// declaredFormat is the format a layer's media type or title names, if any.
func declaredFormat(l *v1.Descriptor) string {
	if f, ok := strings.CutPrefix(l.MediaType, diskMediaPrefix); ok {
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

// PushManifest inspects a manifest about to be stored through the Registry API, under tags
// (none for a push by digest). For a VM disk it checks the disk is safe (an error refuses
// the push) and returns a function that records the image once the manifest is stored; for
// other content it returns nil, nil.
func (c *Catalog) PushManifest(ctx context.Context, pr auth.Principal, repo string, d digest.Digest, tags []string, m *manifest.Manifest, content []byte) (func(context.Context) error, error) {
	name := pushedName(repo, d, tags)
	if layers, ok := runnableLayers(m, content); ok {
		// A runtime may unpack the tar layers of an image that also carries a disk-typed
		// layer, so such an image passes both checks.
		record, err := c.pushContainerDisk(ctx, pr, repo, d, name, layers)
		if err != nil || record != nil || !slices.ContainsFunc(layers, isDiskTyped) {
			return record, err
		}
	}
	layers, ok := artifactLayers(m, content)
	if !ok {
		return nil, nil
	}
	disk, err := c.artifactDisk(ctx, repo, layers)
	if err != nil || disk == nil {
		return nil, err
	}
	return func(ctx context.Context) error { return c.recordPushed(ctx, pr, repo, d, name, *disk) }, nil
}

// pushedName names the image of a push as its pusher named the content, the repository and
// its first tag (`demo/pushed:v1`), or the digest for a push by digest: a listing then says
// where each image came from, where the file name (every layer a `disk.img`) would not.
func pushedName(repo string, d digest.Digest, tags []string) string {
	name := repo + "@" + d.String()
	if len(tags) > 0 {
		name = repo + ":" + tags[0]
	}
	if len(name) > MaxNameLen {
		name = name[:MaxNameLen]
	}
	return name
}

// artifactDisk inspects every layer of an artifact and returns its one disk, nil if it has
// none. Every disk layer must be safe, whatever else the artifact holds. An image record is
// one disk, so an artifact with several (a boot and a data disk, say) is refused with a
// message saying to push each disk as its own artifact: storing it without an image would
// leave its pusher wondering where the image went, and picking one would hide the other.
func (c *Catalog) artifactDisk(ctx context.Context, repo string, layers []v1.Descriptor) (*pushedDisk, error) {
	var disks []*pushedDisk
	for i := range layers {
		disk, err := c.inspectLayer(ctx, repo, &layers[i], len(layers) == 1)
		if err != nil {
			return nil, err
		}
		if disk != nil {
			disks = append(disks, disk)
		}
	}
	if len(disks) > 1 {
		names := make([]string, len(disks))
		for i, d := range disks {
			names[i] = cmp.Or(d.name, d.layer.Digest.String())
		}
		return nil, errorf(BadData, "artifact with %d disks (%s): an image is one disk, push each as its own artifact", len(disks), strings.Join(names, ", "))
	}
	if len(disks) == 0 {
		return nil, nil
	}
	return disks[0], nil
}

// inspectLayer reads one artifact layer through the inspector: a disk if its media type or
// title names a format or its bytes are one that is more than raw bytes, nil otherwise. A
// title ending in .img or .raw names a raw disk only when it is the artifact's one layer:
// beside others (a kernel.img and an initrd.img) it is more likely a file than a disk.
func (c *Catalog) inspectLayer(ctx context.Context, repo string, layer *v1.Descriptor, only bool) (*pushedDisk, error) {
	f, _, err := c.store.OpenBlob(storage.WithoutCacheFill(ctx), repo, layer.Digest)
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
	if declared == diskformat.Raw && !only && !strings.HasPrefix(layer.MediaType, diskMediaPrefix) {
		declared = ""
	}
	if declared == "" {
		switch report.Format {
		case diskformat.Raw, diskformat.GPT, diskformat.LUKS:
			return nil, nil // bytes that say nothing of being a disk: plain content
		}
		declared = report.Format
	}
	if err := diskformat.Verify(declared, report); err != nil {
		return nil, errorf(BadData, "layer %s: %v", cmp.Or(layer.Annotations[v1.AnnotationTitle], layer.Digest.String()), err)
	}
	return &pushedDisk{layer: layer, name: layer.Annotations[v1.AnnotationTitle], format: declared, report: report,
		size: layer.Size, md5: hex.EncodeToString(md5h.Sum(nil)), sha: hex.EncodeToString(shah.Sum(nil))}, nil
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

// recordPushed makes the image record, named name, of a pushed disk artifact (once per
// repository and manifest).
func (c *Catalog) recordPushed(ctx context.Context, pr auth.Principal, repo string, d digest.Digest, name string, disk pushedDisk) error {
	proj, err := c.policy.RepositoryProject(ctx, repo)
	owner := proj.ID
	if err != nil {
		owner = pr.ProjectID // --auth none, or a repository named after no project
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
	created := false
	err = c.updateImages(ctx, func(tx meta.Tx, ev *events) error {
		created = false
		if _, err := tx.Get(keyImageRef(repo, d.String())); err == nil {
			return nil
		}
		for _, r := range refs {
			if err := tx.Put(keyImageRef(repo, r.String()), []byte(img.ID)); err != nil {
				return err
			}
		}
		created = true
		return ev.put(tx, nil, img)
	})
	if err != nil || !created {
		return err
	}
	c.attest(ctx, img, DiskInspection{ImageID: img.ID, DiskFormat: format, DetectedFormat: disk.report.Format,
		VirtualSize: disk.report.VirtualSize, Size: size, Safety: "safe", Repository: repo, Source: "registry",
		InspectedAt: now, Digests: map[string]string{"disk": "sha256:" + sha, "layer": disk.layer.Digest.String(), "md5": sum}},
		d, digest.Digest(img.Reference))
	return nil
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
