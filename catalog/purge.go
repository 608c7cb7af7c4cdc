package catalog

import (
	"context"
	"errors"
	"time"

	"github.com/xloud/xloud-image/storage/meta"
)

// Purge removes the records of images deleted before cutoff (Glance keeps deleted rows until
// purged). Their content left the registry at deletion; GC takes the bytes. It returns the
// ids purged.
func (c *Catalog) Purge(ctx context.Context, cutoff time.Time) ([]string, error) {
	var keys []string
	if err := c.meta.View(ctx, func(tx meta.Tx) (err error) {
		keys, err = tx.SetRange(setDeleted, "", 0)
		return err
	}); err != nil {
		return nil, err
	}
	purged := []string{}
	for _, k := range keys {
		id := idFromSortKey(k)
		gone := false
		err := c.meta.Update(ctx, func(tx meta.Tx) error {
			gone = false
			img, err := getImage(tx, id)
			if errors.Is(err, ErrNotFound) {
				return tx.SetRemove(setDeleted, k)
			}
			if err != nil {
				return err
			}
			if img.Status != StatusDeleted || img.DeletedAt == nil || !img.DeletedAt.Before(cutoff) {
				return nil
			}
			ms, err := tx.SetRange(keyMembers(id), "", 0)
			if err != nil {
				return err
			}
			for _, p := range ms {
				if err := purgeMember(tx, img, p); err != nil {
					return err
				}
			}
			if err := tx.SetRemove(setDeleted, k); err != nil {
				return err
			}
			gone = true
			return tx.Delete(keyImage(id))
		})
		if err != nil {
			return purged, err
		}
		if gone {
			purged = append(purged, id)
		}
	}
	return purged, nil
}

// purgeMember removes project p's membership of a purged image.
func purgeMember(tx meta.Tx, img Image, p string) error {
	if err := tx.Delete(keyMember(img.ID, p)); err != nil {
		return err
	}
	if err := tx.SetRemove(keyMembers(img.ID), p); err != nil {
		return err
	}
	return indexRemove(tx, idxMember(p), img)
}
