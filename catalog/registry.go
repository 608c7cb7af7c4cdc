package catalog

import (
	"context"
	"errors"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage/meta"
)

// The catalog's answers to the Registry API (registry.Catalog) and to the policy
// (auth.Policy.ContentReadable): image rules applied to OCI content.

// imageFor returns the image manifest d of repo stands for, if any.
func (c *Catalog) imageFor(ctx context.Context, repo string, d digest.Digest) (Image, map[string]Member, bool, error) {
	var img Image
	var ms map[string]Member
	found := false
	err := c.meta.View(ctx, func(tx meta.Tx) error {
		id, err := tx.Get(keyImageRef(repo, d.String()))
		if errors.Is(err, meta.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if img, err = getImage(tx, string(id)); err != nil {
			return err
		}
		found = true
		ms, err = members(tx, img.ID)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return img, nil, false, nil
	}
	return img, ms, found, err
}

// ReadManifest decides a registry read of manifest d: the caller must be allowed to download
// the image (so a deactivated image is for admins only, and deleted ones are gone).
func (c *Catalog) ReadManifest(ctx context.Context, pr auth.Principal, repo string, d digest.Digest) (bool, bool, error) {
	img, ms, found, err := c.imageFor(ctx, repo, d)
	if err != nil || !found {
		return found, false, err
	}
	if img.Status == StatusDeleted {
		return true, false, nil
	}
	ok, err := c.policy.AllowImage(ctx, pr, facts(img, ms), auth.ImageDownload, "")
	return true, ok, err
}

// DeleteManifest deletes the image manifest d stands for (Deleting a manifest through the
// Registry API deletes the image).
func (c *Catalog) DeleteManifest(ctx context.Context, pr auth.Principal, repo string, d digest.Digest) (bool, error) {
	img, _, found, err := c.imageFor(ctx, repo, d)
	if err != nil || !found {
		return found, err
	}
	return true, c.Delete(ctx, pr, img.ID)
}

// ContentReadable reports whether pr may read some image whose content is in repo.
func (c *Catalog) ContentReadable(ctx context.Context, pr auth.Principal, repo string) (bool, error) {
	var candidates []Image
	err := c.meta.View(ctx, func(tx meta.Tx) error {
		var err error
		candidates, err = mergeScan(tx, walk{sets: []string{idxRepo(repo)}}, func(img Image) (bool, error) {
			return img.Status == StatusActive || img.Status == StatusDeactivated, nil
		})
		return err
	})
	if err != nil {
		return false, err
	}
	for _, img := range candidates {
		var ms map[string]Member
		if img.Visibility == VisibilityShared {
			if err := c.meta.View(ctx, func(tx meta.Tx) (err error) { ms, err = members(tx, img.ID); return err }); err != nil {
				return false, err
			}
		}
		ok, err := c.policy.AllowImage(ctx, pr, facts(img, ms), auth.ImageDownload, "")
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}
