package catalog

import (
	"context"
	"log/slog"

	"github.com/xloud/xloud-image/storage/meta"
)

// statusChange is one image's move from one status to another (from "" when created).
type statusChange struct {
	id, name string
	from, to Status
	project  string
	size     *int64
	disk     string
}

// events collects the status changes of one transaction; they are logged only once it
// commits, so a retried or failed transaction logs nothing it did not do.
type events struct{ changes []statusChange }

// put writes img as putImage does and notes a status change.
func (ev *events) put(tx meta.Tx, old *Image, img Image) error {
	from := Status("")
	if old != nil {
		from = old.Status
	}
	if from != img.Status {
		ev.changes = append(ev.changes, statusChange{id: img.ID, name: deref(img.Name), from: from, to: img.Status,
			project: img.Owner, size: img.Size, disk: deref(img.DiskFormat)})
	}
	return putImage(tx, old, img)
}

// updateImages runs fn in one transaction and logs the image status changes it committed.
func (c *Catalog) updateImages(ctx context.Context, fn func(tx meta.Tx, ev *events) error) error {
	var ev events
	err := c.meta.Update(ctx, func(tx meta.Tx) error {
		ev = events{} // Update may run fn again
		return fn(tx, &ev)
	})
	if err != nil {
		return err
	}
	for _, ch := range ev.changes {
		attrs := []slog.Attr{slog.String("image", ch.id), slog.String("name", ch.name), slog.String("from", string(ch.from)),
			slog.String("to", string(ch.to)), slog.String("project", ch.project)}
		if ch.size != nil {
			attrs = append(attrs, slog.Int64("size", *ch.size))
		}
		if ch.disk != "" {
			attrs = append(attrs, slog.String("disk_format", ch.disk))
		}
		c.Log.LogAttrs(ctx, slog.LevelInfo, "image status changed", attrs...)
	}
	return nil
}
