package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/xloud/xloud-image/storage/meta"
)

// The layout of the catalog's indexes has a version, so a store written by an older release
// is brought up to date when a newer one starts.
//
//	catalog:index-version   "3": index sets hold timeKey, name twins "<name>\x00<timeKey>"
//	                        2: index sets held sortKey (newest first, ties by id ascending)
//	                        1 (no version key): and the twins "<name>\x00<sortKey>"
const (
	keyIndexVersion = "catalog:index-version"
	indexVersion    = "3"
)

// Migrate brings the indexes up to indexVersion and says how many images it moved. Each
// image moves in its own transaction and a moved image is recognised, so it may run again
// after an interruption.
func (c *Catalog) Migrate(ctx context.Context) (int, error) {
	var current string
	var keys []string
	err := c.meta.View(ctx, func(tx meta.Tx) error {
		b, err := tx.Get(keyIndexVersion)
		if err == nil {
			current = string(b)
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		if current == indexVersion {
			return nil
		}
		keys, err = tx.SetRange(idxAll, "", 0) // all of them first: moving reorders the set
		return err
	})
	if err != nil || current == indexVersion {
		return 0, err
	}
	if current != "" && current != "2" {
		return 0, fmt.Errorf("catalog index version %q is not one this release knows (up to %s)", current, indexVersion)
	}
	moved := 0
	for _, k := range keys {
		id := idFromSortKey(k)
		changed := false
		err := c.meta.Update(ctx, func(tx meta.Tx) error {
			changed = false // the function may run again
			img, err := getImage(tx, id)
			if errors.Is(err, meta.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			sets := img.indexes()
			projects, err := tx.SetRange(keyMembers(img.ID), "", 0)
			if err != nil {
				return err
			}
			for _, p := range projects {
				sets = append(sets, idxMember(p))
			}
			for _, s := range sets {
				for _, m := range []struct{ set, old, now string }{
					{s, sortKey(img.CreatedAt, img.ID), timeKey(img.CreatedAt, img.ID)},
					{byName(s), oldNameKey(img), nameKey(img)},
				} {
					has, err := tx.SetHas(m.set, m.old)
					if err != nil {
						return err
					}
					if !has {
						continue
					}
					if err := tx.SetRemove(m.set, m.old); err != nil {
						return err
					}
					if err := tx.SetAdd(m.set, m.now); err != nil {
						return err
					}
					changed = true
				}
			}
			return nil
		})
		if err != nil {
			return moved, fmt.Errorf("migrate indexes of image %s: %w", id, err)
		}
		if changed {
			moved++
		}
	}
	return moved, c.meta.Update(ctx, func(tx meta.Tx) error { return tx.Put(keyIndexVersion, []byte(indexVersion)) })
}
