package catalog

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/manifest"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// The translation layer: an image with data is a VM-image index in <project>/<slug>, tagged
// with the image id and `latest`.

var (
	slugStrip = regexp.MustCompile(`[^a-z0-9]+`)
)

// TagLatest moves to the newest active image of a repository.
const TagLatest = "latest"

// slug makes a repository path component of an image name.
func slug(name string) string {
	s := strings.Trim(slugStrip.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(s) > 100 {
		s = strings.Trim(s[:100], "-")
	}
	if s == "" {
		return "image"
	}
	return s
}

// repositoryFor is where an image's content goes: its owner project's namespace (its name, or
// its id when the name is not a valid path component) and the slug of its name, fixed at
// first upload.
func (c *Catalog) repositoryFor(ctx context.Context, img Image) (string, error) {
	if img.Repository != "" {
		return img.Repository, nil
	}
	project := cmp.Or(img.Owner, "library") // ownerless images (--auth none)
	if p, err := c.policy.Directory.GetProject(ctx, img.Owner); err == nil {
		project = auth.RepositoryNamespace(p)
	}
	return project + "/" + slug(deref(img.Name)), nil
}

// OCIReference is where the registry serves img, without the registry's host (the catalog
// cannot know the address clients reach the registry at; the doors add it):
// `<repository>:<image id>` where img's index is tagged with its id (data uploaded through
// the Image API, a pushed qcow2 or raw disk), else `<repository>@<digest>` of the pushed
// manifest; empty while img has no data.
func OCIReference(img Image) string {
	if img.Repository == "" || img.Reference == "" {
		return ""
	}
	if img.Pushed && (img.DiskOffset != 0 || !containerDiskFormat(img)) {
		return img.Repository + "@" + img.Reference
	}
	return img.Repository + ":" + img.ID
}

// containerDiskFormat: containerDisks exist for qcow2 and raw only.
func containerDiskFormat(img Image) bool {
	f := deref(img.DiskFormat)
	return f == "qcow2" || f == "raw"
}

func containerDiskFraming(img Image, size int64) ([]byte, int64) {
	return manifest.ContainerDiskTar(size, img.CreatedAt)
}

// uploaded is what receive learnt of the data.
type uploaded struct {
	repo                string
	disk                digest.Digest
	size                int64
	md5                 string
	virtualSize         int64
	detected            string // the format the inspector read in the bytes
	hashAlgo, hashValue string
	tarHash             hash.Hash // nil: compute from the stored blob
	stores              []string  // the stores holding the data (multi-store), else nil
}

// publish writes the VM-image index for img's data and makes the image active.
func (c *Catalog) publish(ctx context.Context, img Image, data uploaded) (Image, error) {
	format := deref(img.DiskFormat)
	cfg, _ := json.Marshal(map[string]any{
		"id": img.ID, "name": img.Name, "owner": img.Owner, "disk_format": format,
		"container_format": img.ContainerFormat, "min_disk": img.MinDisk, "min_ram": img.MinRAM,
		"properties": img.Properties, "checksum": data.md5,
		"os_hash_algo": data.hashAlgo, "os_hash_value": data.hashValue,
	})
	cfgDesc, err := c.putContent(ctx, data.repo, manifest.MediaTypeVMConfig, cfg)
	if err != nil {
		return img, err
	}
	title := slug(deref(img.Name)) + "." + format
	diskDesc := v1.Descriptor{MediaType: manifest.DiskMediaType(format), Digest: data.disk, Size: data.size,
		Annotations: map[string]string{v1.AnnotationTitle: title}}
	annotations := map[string]string{"io.xloud.image.id": img.ID}
	base, subject := c.snapshotBase(ctx, img)
	artifact := manifest.DiskArtifact(cfgDesc, diskDesc, subject, annotations)
	artDesc := manifest.Descriptor(v1.MediaTypeImageManifest, artifact)
	artDesc.ArtifactType = manifest.ArtifactTypeVMImage
	children := []manifestDoc{{artDesc, artifact}}
	var cdDesc *v1.Descriptor
	if containerDiskFormat(img) {
		doc, err := c.containerDisk(ctx, img, data)
		if err != nil {
			return img, err
		}
		cdDesc = &doc.desc
		children = append(children, doc)
	}
	index := manifest.VMImageIndex(cdDesc, artDesc, annotations)
	indexDigest := digest.FromBytes(index)
	for _, ch := range children {
		if err := c.putManifest(ctx, data.repo, ch.desc, ch.content, nil); err != nil {
			return img, err
		}
	}
	idxDesc := manifest.Descriptor(v1.MediaTypeImageIndex, index)
	if err := c.putManifest(ctx, data.repo, idxDesc, index, []string{img.ID, TagLatest}); err != nil {
		return img, err
	}
	referrer := ""
	if subject != nil && base.Repository != data.repo {
		// The referrers API is per repository: the snapshot is listed beside its base.
		if err := c.linkReferrer(ctx, data.repo, base.Repository, artDesc, artifact, []digest.Digest{cfgDesc.Digest, data.disk}); err != nil {
			return img, err
		}
		referrer = base.Repository + "@" + artDesc.Digest.String()
	}
	var out Image
	err = c.updateImages(ctx, func(tx meta.Tx, ev *events) error {
		cur, err := getImage(tx, img.ID)
		if err != nil {
			return err
		}
		if (cur.Status != StatusSaving && cur.Status != StatusImporting) || cur.Lease != img.Lease {
			return ErrGone // deleted, or recovered from this write and written again
		}
		next := cur
		next.Status = StatusActive
		next.Lease, next.Staged = "", nil
		next.Size = &data.size
		if data.virtualSize > 0 {
			next.VirtualSize = &data.virtualSize
		}
		next.Checksum = &data.md5
		next.HashAlgo, next.HashValue = &data.hashAlgo, &data.hashValue
		next.Repository, next.Reference, next.DiskDigest = data.repo, indexDigest.String(), data.disk.String()
		next.Referrer = referrer
		next.Stores = slices.Clone(data.stores)
		if referrer != "" {
			if err := tx.Put(keyImageRef(base.Repository, artDesc.Digest.String()), []byte(img.ID)); err != nil {
				return err
			}
		}
		next.UpdatedAt = c.Now().UTC().Truncate(1e9)
		out = next
		for _, d := range append([]digest.Digest{indexDigest}, childDigests(children)...) {
			if err := tx.Put(keyImageRef(data.repo, d.String()), []byte(img.ID)); err != nil {
				return err
			}
		}
		return ev.put(tx, &cur, next)
	})
	if err != nil {
		if uerr := c.unpublish(context.WithoutCancel(ctx), Image{ID: img.ID, Repository: data.repo, Reference: indexDigest.String()}); uerr != nil {
			c.Log.Error("remove the manifests of an image not published", "image", img.ID, "repository", data.repo, "err", uerr)
		}
		return out, err
	}
	c.attest(ctx, out, DiskInspection{ImageID: img.ID, DiskFormat: format, DetectedFormat: data.detected,
		VirtualSize: data.virtualSize, Size: data.size, Safety: "safe", Repository: data.repo, Source: "image-api",
		InspectedAt: c.Now().UTC(), Digests: map[string]string{"disk": data.disk.String(), "md5": data.md5,
			data.hashAlgo: data.hashValue}}, indexDigest)
	return out, nil
}

type manifestDoc struct {
	desc    v1.Descriptor
	content []byte
}

func childDigests(docs []manifestDoc) []digest.Digest {
	var out []digest.Digest
	for _, d := range docs {
		out = append(out, d.desc.Digest)
	}
	return out
}

// containerDisk makes the runnable image whose one tar layer holds disk/disk.img, generated
// from the stored disk blob (a derived blob: no second copy).
func (c *Catalog) containerDisk(ctx context.Context, img Image, data uploaded) (manifestDoc, error) {
	prefix, suffix := containerDiskFraming(img, data.size)
	th := data.tarHash
	if th == nil {
		// The size was not known while the data streamed in: hash the layer from the blob.
		th = sha256.New()
		th.Write(prefix)
		f, _, err := c.store.OpenBlob(storage.WithoutCacheFill(ctx), data.repo, data.disk)
		if err != nil {
			return manifestDoc{}, err
		}
		_, err = io.Copy(th, f)
		f.Close()
		if err != nil {
			return manifestDoc{}, fmt.Errorf("hash containerDisk layer: %w", err)
		}
	}
	th.Write(make([]byte, suffix))
	layerDigest := digest.NewDigest(digest.SHA256, th)
	if err := c.store.PutDerived(ctx, data.repo, layerDigest, storage.Derived{Base: data.disk, Prefix: prefix, Suffix: suffix}); err != nil {
		return manifestDoc{}, err
	}
	arch := img.Properties["architecture"]
	if arch == "" {
		arch = "amd64"
	}
	cfg := manifest.ContainerDiskConfig(arch, layerDigest, img.CreatedAt)
	cfgDesc, err := c.putContent(ctx, data.repo, v1.MediaTypeImageConfig, cfg)
	if err != nil {
		return manifestDoc{}, err
	}
	layer := v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: layerDigest, Size: int64(len(prefix)) + data.size + suffix}
	m := manifest.ContainerDiskManifest(cfgDesc, layer)
	desc := manifest.Descriptor(v1.MediaTypeImageManifest, m)
	desc.Platform = &v1.Platform{Architecture: arch, OS: "linux"}
	return manifestDoc{desc, m}, nil
}

// putContent stores small content as a blob of repo.
func (c *Catalog) putContent(ctx context.Context, repo, mediaType string, content []byte) (v1.Descriptor, error) {
	d, n, err := c.store.PutBlob(ctx, repo, bytes.NewReader(content), storage.PutOptions{Max: -1})
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: n}, nil
}

// putManifest stores a generated manifest (its references are all in repo).
func (c *Catalog) putManifest(ctx context.Context, repo string, desc v1.Descriptor, content []byte, tags []string) error {
	m, err := manifest.Parse(desc.MediaType, content)
	if err != nil {
		return err
	}
	put := storage.ManifestPut{Digest: desc.Digest, MediaType: m.MediaType, Content: content,
		ArtifactType: m.ArtifactType, Annotations: m.Annotations, Required: m.Blobs,
		Children: m.Manifests, Tags: tags}
	if m.Subject != nil {
		put.Subject = m.Subject.Digest
	}
	return c.store.PutManifest(ctx, repo, put)
}

// snapshotBase returns, for a snapshot (image_type=snapshot) whose base_image_ref names an
// active image its owner project can see, that image and the descriptor of its index: the
// subject of the snapshot's artifact.
func (c *Catalog) snapshotBase(ctx context.Context, img Image) (Image, *v1.Descriptor) {
	ref := img.Properties["base_image_ref"]
	if img.Properties["image_type"] != "snapshot" || !ValidID(ref) || ref == img.ID {
		return Image{}, nil
	}
	base, ms, err := c.load(ctx, ref)
	if err != nil || base.Status != StatusActive || base.Reference == "" {
		return Image{}, nil
	}
	owner := auth.Principal{UserID: img.Owner, Scoped: true, ProjectID: img.Owner, ScopedRoles: []auth.Role{auth.RoleReader}}
	if ok, err := c.policy.AllowImage(ctx, owner, facts(base, ms), auth.ImageGet, ""); err != nil || !ok {
		return Image{}, nil
	}
	d, err := digest.Parse(base.Reference)
	if err != nil {
		return Image{}, nil
	}
	rec, _, err := c.store.GetManifest(ctx, base.Repository, d)
	if err != nil {
		return Image{}, nil
	}
	return base, &v1.Descriptor{MediaType: rec.MediaType, Digest: d, Size: rec.Size}
}

// linkReferrer puts a copy of the artifact manifest into repo to, its blobs linked there
// from repo from (a link, not a copy).
func (c *Catalog) linkReferrer(ctx context.Context, from, to string, desc v1.Descriptor, content []byte, blobs []digest.Digest) error {
	for _, b := range blobs {
		if err := c.store.MountBlob(ctx, from, to, b); err != nil {
			return fmt.Errorf("link %s into %s: %w", b, to, err)
		}
	}
	return c.putManifest(ctx, to, desc, content, nil)
}

// unpublish removes an image's manifests from the registry at once (tags go with them).
func (c *Catalog) unpublish(ctx context.Context, img Image) error {
	if repo, ref, ok := strings.Cut(img.Referrer, "@"); ok {
		if d, err := digest.Parse(ref); err == nil {
			if err := c.store.DeleteManifest(ctx, repo, d); err != nil && !errors.Is(err, storage.ErrManifestUnknown) {
				return err
			}
			if err := c.forgetRef(ctx, repo, d); err != nil {
				return err
			}
		}
	}
	if img.Repository == "" || img.Reference == "" {
		return nil
	}
	d, err := digest.Parse(img.Reference)
	if err != nil {
		return err
	}
	_, content, err := c.store.GetManifest(ctx, img.Repository, d)
	if err != nil && !errors.Is(err, storage.ErrManifestUnknown) {
		return err
	}
	var children []digest.Digest
	if content != nil {
		if m, err := manifest.Parse("", content); err == nil {
			children = m.Manifests
		}
	}
	for _, x := range append([]digest.Digest{d}, children...) {
		if err := c.store.DeleteManifest(ctx, img.Repository, x); err != nil && !errors.Is(err, storage.ErrManifestUnknown) {
			return err
		}
		if err := c.forgetRef(ctx, img.Repository, x); err != nil {
			return err
		}
		if err := c.dropAttestations(ctx, img.Repository, x); err != nil {
			return err
		}
	}
	return nil
}

// forgetRef removes the record of which image manifest d of repo stands for.
func (c *Catalog) forgetRef(ctx context.Context, repo string, d digest.Digest) error {
	err := c.meta.Update(ctx, func(tx meta.Tx) error { return tx.Delete(keyImageRef(repo, d.String())) })
	if err != nil {
		return fmt.Errorf("forget image manifest %s@%s: %w", repo, d, err)
	}
	return nil
}
