package catalog

import (
	"context"

	"github.com/xloud/xloud-image/storage/meta"
)

// BulkInsert stores images directly, in batches of one transaction each: benchmark set-up
// for catalogs of 100,000 images, which Create (one durable transaction each) would take
// minutes to build.
func (c *Catalog) BulkInsert(ctx context.Context, imgs []Image) error {
	const batch = 5000
	for len(imgs) > 0 {
		n := min(batch, len(imgs))
		part := imgs[:n]
		imgs = imgs[n:]
		if err := c.meta.Update(ctx, func(tx meta.Tx) error {
			for _, img := range part {
				if err := putImage(tx, nil, img); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// Heartbeat beats this process's lease once (RunLeases does it on a ticker).
func (c *Catalog) Heartbeat(ctx context.Context) error { return c.heartbeat(ctx) }

// IndexWalk says whether List serves opt by an index walk (not by sorting the visible set).
func IndexWalk(opt ListOptions) bool {
	_, ok := planWalk([]string{idxAll}, opt, nil)
	return ok
}

// Downgrade rewrites the index sets and name twins of every image as index version 1 wrote
// them and forgets the version: a store as an older release left it.
func (c *Catalog) Downgrade(ctx context.Context) error {
	return c.meta.Update(ctx, func(tx meta.Tx) error {
		keys, err := tx.SetRange(idxAll, "", 0)
		if err != nil {
			return err
		}
		for _, k := range keys {
			img, err := getImage(tx, idFromSortKey(k))
			if err != nil {
				return err
			}
			sets := img.indexes()
			projects, _ := tx.SetRange(keyMembers(img.ID), "", 0)
			for _, p := range projects {
				sets = append(sets, idxMember(p))
			}
			for _, s := range sets {
				if has, _ := tx.SetHas(s, timeKey(img.CreatedAt, img.ID)); has {
					tx.SetRemove(s, timeKey(img.CreatedAt, img.ID))
					tx.SetAdd(s, sortKey(img.CreatedAt, img.ID))
				}
				if has, _ := tx.SetHas(byName(s), nameKey(img)); has {
					tx.SetRemove(byName(s), nameKey(img))
					tx.SetAdd(byName(s), oldNameKey(img))
				}
			}
		}
		return tx.Delete(keyIndexVersion)
	})
}
