package catalog

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xloud/xloud-image/storage/meta"
)

// Leases. An image being written — an upload saving, a stage streaming in, an import
// running — carries the id of the server process doing it (Image.Lease), and every process
// heartbeats its id in the metadata store. When a process dies mid-write its heartbeat
// stops; the next janitor pass of any process puts such images back to queued with no data,
// exactly as a failed upload would, instead of leaving them saving or importing for ever.
// On the embedded store only one process can run, so at its start every lease it finds is
// left over from a process that is gone.
//
// A process is taken for dead when its heartbeat has not changed for leaseStale by the
// observer's own clock, so clocks that disagree between servers do not matter.
//
//	node:<id>        the process's last heartbeat (its own Unix seconds: any changing value)
//	set idx:leased   images that carry a lease
const (
	idxLeased      = "idx:leased"
	heartbeatEvery = 20 * time.Second
	// leaseStale is how old a heartbeat is when its process is taken for dead: several
	// missed beats, so a slow store or a pause does not requeue live work.
	leaseStale = 90 * time.Second
)

func keyNode(id string) string { return "node:" + id }

// leaseJanitorLock is the cluster lock of the lease janitor.
const leaseJanitorLock = "lease-janitor"

// Node is this process's id among the servers sharing the metadata store.
func (c *Catalog) Node() string { return c.node }

// leased: an image in one of the writing states holds its lease in idx:leased.
func (img Image) leased() bool {
	if img.Lease == "" {
		return false
	}
	switch img.Status {
	case StatusSaving, StatusUploading, StatusImporting:
		return true
	case StatusActive: // a copy-image running
		return img.Properties[ImportingToStoresProperty] != ""
	}
	return false
}

// updateLeased keeps idx:leased in step with a record being written.
func updateLeased(tx meta.Tx, old *Image, img Image) error {
	if img.leased() {
		return tx.SetAdd(idxLeased, img.ID)
	}
	if old != nil && old.leased() {
		return tx.SetRemove(idxLeased, img.ID)
	}
	return nil
}

// RunLeases heartbeats this process and, now and then, returns to queued the images whose
// writer stopped beating. exclusive says no other process can share the metadata store
// (the embedded store): every lease found at start is then stale at once. It returns when
// ctx ends.
func (c *Catalog) RunLeases(ctx context.Context, exclusive bool, log *slog.Logger) {
	recoverLeases := func(ctx context.Context, all bool) {
		if n, err := c.RecoverLeases(ctx, all); err != nil {
			log.Warn("recover leased images", "err", err)
		} else if n > 0 {
			log.Info("images left mid-write by a stopped server returned to queued", "images", n)
		}
	}
	pass := func(all bool) {
		if err := c.heartbeat(ctx); err != nil {
			log.Warn("lease heartbeat", "err", err)
		}
		if exclusive {
			recoverLeases(ctx, all)
			return
		}
		// Every node beats; one at a time looks for the dead (the lock outlives two rounds,
		// so its holder keeps it while it runs).
		meta.Once(ctx, c.meta, leaseJanitorLock, c.node, 3*heartbeatEvery, log, func(ctx context.Context) { recoverLeases(ctx, all) })
	}
	pass(exclusive)
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := c.meta.Update(context.WithoutCancel(ctx), func(tx meta.Tx) error { return tx.Delete(keyNode(c.node)) }); err != nil {
				log.Warn("remove this server's heartbeat at stop", "node", c.node, "err", err)
			}
			return
		case <-t.C:
			pass(false)
		}
	}
}

func (c *Catalog) heartbeat(ctx context.Context) error {
	return c.meta.Update(ctx, func(tx meta.Tx) error {
		return tx.Put(keyNode(c.node), []byte(strconv.FormatInt(c.Now().Unix(), 10)))
	})
}

// RecoverLeases returns to queued, with no data, every leased image whose process has not
// beaten for leaseStale (all of other processes' when all is set), and says how many.
func (c *Catalog) RecoverLeases(ctx context.Context, all bool) (int, error) {
	var ids []string
	err := c.meta.View(ctx, func(tx meta.Tx) error {
		var err error
		ids, err = tx.SetRange(idxLeased, "", 0)
		return err
	})
	if err != nil {
		return 0, err
	}
	recovered := 0
	for _, id := range ids {
		requeued := false
		err := c.updateImages(ctx, func(tx meta.Tx, ev *events) error {
			requeued = false // the function may run again
			img, err := getImage(tx, id)
			if errors.Is(err, meta.ErrNotFound) {
				return tx.SetRemove(idxLeased, id)
			}
			if err != nil {
				return err
			}
			if !img.leased() {
				return tx.SetRemove(idxLeased, id)
			}
			if img.Lease == c.node || (!all && c.alive(tx, img.Lease)) {
				return nil
			}
			next := img.requeued(c.Now())
			if img.Status == StatusActive {
				next = img.copyEnded(c.Now()) // the data stays; the copy failed
			}
			if err := ev.put(tx, &img, next); err != nil {
				return err
			}
			requeued = true
			// The import task of a stopped writer ends here, failed.
			return c.interruptTask(tx, img.Properties[ImportLockProperty])
		})
		if err != nil {
			return recovered, err
		}
		if requeued {
			recovered++
		}
	}
	return recovered, nil
}

// beats remembers, per writer process, its heartbeat as last read and when (by this
// process's clock) it was first read with that value.
type beats struct {
	mu   sync.Mutex
	seen map[string]beat
}

type beat struct {
	value string
	since time.Time
}

// alive: the process's heartbeat exists and has changed within leaseStale, as this process
// has watched it (a heartbeat seen for the first time counts as fresh).
func (c *Catalog) alive(tx meta.Tx, node string) bool {
	b, err := tx.Get(keyNode(node))
	now := c.Now()
	c.beats.mu.Lock()
	defer c.beats.mu.Unlock()
	if c.beats.seen == nil {
		c.beats.seen = map[string]beat{}
	}
	if err != nil {
		delete(c.beats.seen, node) // stopped, or gone for good
		return false
	}
	last, ok := c.beats.seen[node]
	if !ok || last.value != string(b) {
		c.beats.seen[node] = beat{value: string(b), since: now}
		return true
	}
	return now.Sub(last.since) < leaseStale
}

// copyEnded is img after a copy-image that stopped: active in the stores it was in (and
// those the copy reached), the stores left counted as failed, the lock and lease dropped.
func (img Image) copyEnded(now time.Time) Image {
	next := img.clone()
	failed := splitStores(img.Properties[FailedImportProperty])
	for _, s := range splitStores(img.Properties[ImportingToStoresProperty]) {
		if !slices.Contains(failed, s) {
			failed = append(failed, s)
		}
	}
	next.Properties[ImportingToStoresProperty] = ""
	next.Properties[FailedImportProperty] = strings.Join(failed, ",")
	delete(next.Properties, ImportLockProperty)
	next.Lease = ""
	next.UpdatedAt = now.UTC().Truncate(time.Second)
	return next
}

// requeued is img back in queued with no data, as after a failed upload.
func (img Image) requeued(now time.Time) Image {
	next := img.clone()
	// An import that ended here (failed, or its server stopped) holds the lock no more.
	delete(next.Properties, ImportLockProperty)
	next.Status = StatusQueued
	next.Lease, next.Reserved = "", 0
	next.Size, next.VirtualSize, next.Checksum, next.HashAlgo, next.HashValue = nil, nil, nil, nil, nil
	next.Staged = nil
	next.DiskDigest = ""
	next.Stores = nil
	if next.Reference == "" {
		next.Repository = ""
	}
	next.UpdatedAt = now.UTC().Truncate(time.Second)
	return next
}
