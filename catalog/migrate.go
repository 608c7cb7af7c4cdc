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
//	catalog:index-version   "2": name twins hold "<name>\x00<timeKey>" (version 1:
//	                        "<name>\x00<sortKey>", newest first within a name)
const (
	keyIndexVersion = "catalog:index-version"
	indexVersion    = "2"
)

// Migrate brings the indexes up to indexVersion and says how many images it moved. Each
// image moves in its own transaction and a moved image is recognised, so it may run again
// after an interruption.
func (c *Catalog) Migrate(ctx context.Context) (int, error) {
	var current string
	err := c.meta.View(ctx, func(tx meta.Tx) error {
		b, err := tx.Get(keyIndexVersion)
		if err == nil {
			current = string(b)
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil || current == indexVersion {
		return 0, err
	}
	if current != "" {
		return 0, fmt.Errorf("catalog index version %q is newer than this release knows (%s)", current, indexVersion)
	}
	moved := 0
	after := ""
	for {
		var keys []string
		if err := c.meta.View(ctx, func(tx meta.Tx) error {
			var err error
			keys, err = tx.SetRange(idxAll, after, 500)
			return err
		}); err != nil {
			return moved, err
		}
		if len(keys) == 0 {
			break
		}
		after = keys[len(keys)-1]
		for _, k := range keys {
			changed := false
			err := c.meta.Update(ctx, func(tx meta.Tx) error {
				changed = false
				img, err := getImage(tx, idFromSortKey(k))
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
					old := oldNameKey(img)
					if has, err := tx.SetHas(byName(s), old); err != nil || !has {
						if err != nil {
							return err
						}
						continue
					}
					if err := tx.SetRemove(byName(s), old); err != nil {
						return err
					}
					if err := tx.SetAdd(byName(s), nameKey(img)); err != nil {
						return err
					}
					changed = true
				}
				return nil
			})
			if err != nil {
				return moved, fmt.Errorf("migrate indexes of image %s: %w", idFromSortKey(k), err)
			}
			if changed {
				moved++
			}
		}
	}
	return moved, c.meta.Update(ctx, func(tx meta.Tx) error { return tx.Put(keyIndexVersion, []byte(indexVersion)) })
}
