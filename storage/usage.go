package storage

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
	"github.com/xloud/xloud-image/storage/meta"
)

// Usage is what the store holds at one moment, for the metrics.
type Usage struct {
	Blobs     int64 // committed blobs
	BlobBytes int64 // their bytes (each stored once, however many repositories link it)
	Uploads   int64 // open upload sessions
}

// Usage counts the blobs, their bytes and the open uploads. It reads every blob record, so
// it is for scrapes, not for requests.
func (s *Store) Usage(ctx context.Context) (Usage, error) {
	var u Usage
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		u = Usage{}
		var err error
		if u.Uploads, err = tx.SetLen(setUploads); err != nil {
			return err
		}
		ds, err := tx.SetRange(setBlobs, "", 0)
		if err != nil {
			return err
		}
		for _, d := range ds {
			r, ok, err := getBlobRecord(tx, digest.Digest(d))
			if err != nil {
				return err
			}
			if ok && !r.Deleting {
				u.Blobs++
				u.BlobBytes += r.Size
			}
		}
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("storage usage: %w", err)
	}
	return u, nil
}
