package catalog

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage/meta"
)

// Delete deletes an image: its record becomes deleted (kept until purged), its manifests and
// tags leave the registry at once, and `latest` moves to the newest active image left in
// the repository. Protected images cannot be deleted.
func (c *Catalog) Delete(ctx context.Context, pr auth.Principal, id string) error {
	img, err := c.mutate(ctx, pr, id, auth.ImageDelete, func(img *Image) error {
		if img.Protected {
			return errorf(Forbidden, "image %s is protected and cannot be deleted", img.ID)
		}
		now := c.Now().UTC().Truncate(1e9)
		img.Status = StatusDeleted
		img.DeletedAt = &now
		return nil
	})
	if err != nil {
		return err
	}
	if err := c.unpublish(ctx, img); err != nil {
		return fmt.Errorf("remove image %s from the registry: %w", id, err)
	}
	if img.Pushed {
		return nil // a pushed repository's tags are the pusher's
	}
	return c.retagLatest(ctx, img.Repository)
}

// retagLatest points `latest` at the newest active image of repo, if any.
func (c *Catalog) retagLatest(ctx context.Context, repo string) error {
	if repo == "" {
		return nil
	}
	var newest Image
	err := c.meta.View(ctx, func(tx meta.Tx) error {
		imgs, err := mergeScan(tx, walk{sets: []string{idxRepo(repo)}, dir: newestFirst, limit: 1}, func(img Image) (bool, error) {
			return img.Status == StatusActive && img.Reference != "" && !img.Pushed, nil
		})
		if err == nil && len(imgs) == 1 {
			newest = imgs[0]
		}
		return err
	})
	if err != nil || newest.ID == "" {
		return err
	}
	d, err := digest.Parse(newest.Reference)
	if err != nil {
		return err
	}
	return c.store.TagManifest(ctx, repo, TagLatest, d)
}
