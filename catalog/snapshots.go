package catalog

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/manifest"
)

// Snapshots lists the snapshots of image id that pr may read: the images whose disk
// artifact names the image's index as its subject (translate.go links it beside the base),
// found through the registry's referrers of that index, so the cost is the number of
// referrers, not the size of the catalog.
func (c *Catalog) Snapshots(ctx context.Context, pr auth.Principal, id string) ([]Image, error) {
	base, err := c.Get(ctx, pr, id)
	if err != nil {
		return nil, err
	}
	d, err := digest.Parse(base.Reference)
	if base.Repository == "" || err != nil {
		return nil, nil
	}
	recs, err := c.store.Referrers(ctx, base.Repository, d)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", id, err)
	}
	var out []Image
	for _, rec := range recs {
		if rec.ArtifactType != manifest.ArtifactTypeVMImage {
			continue // signatures, SBOMs, attestations
		}
		img, ms, found, err := imageFor(ctx, c.meta, base.Repository, rec.Digest)
		if err != nil {
			return nil, err
		}
		if !found || img.ID == id || img.Status == StatusDeleted || img.Properties["base_image_ref"] != id {
			continue
		}
		if c.allow(ctx, pr, img, ms, auth.ImageGet) == nil {
			out = append(out, c.readable(pr, img))
		}
	}
	return out, nil
}

// StoresOf names the blob stores holding an image's disk (Glance's "stores"), for a caller
// that may read the image; none before it has data.
func (c *Catalog) StoresOf(ctx context.Context, pr auth.Principal, id string) ([]string, error) {
	img, err := c.Get(ctx, pr, id)
	if err != nil {
		return nil, err
	}
	return c.ImageStores(ctx, img), nil
}
