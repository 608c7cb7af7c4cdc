package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/xloud/xloud-image/storage/meta"
)

// CountByStatus counts the images in each status (every status present, deleted ones not
// counted: their records are gone from the index). It reads every image, so it is for
// scrapes, not for requests.
func (c *Catalog) CountByStatus(ctx context.Context) (map[Status]int, error) {
	counts := map[Status]int{}
	err := c.meta.View(ctx, func(tx meta.Tx) error {
		clear(counts)
		for _, s := range []Status{StatusQueued, StatusSaving, StatusUploading, StatusImporting, StatusActive,
			StatusDeactivated, StatusKilled, StatusPendingDelete} {
			counts[s] = 0
		}
		keys, err := tx.SetRange(idxAll, "", 0)
		if err != nil {
			return err
		}
		for _, k := range keys {
			_, id, _ := strings.Cut(k, "|")
			img, err := getImage(tx, id)
			if errors.Is(err, ErrNotFound) {
				continue // removed since the index was read
			}
			if err != nil {
				return err
			}
			counts[img.Status]++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count images: %w", err)
	}
	return counts, nil
}
