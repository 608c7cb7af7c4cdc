package catalog

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage"
)

// The image cache API (Glance's /v2/cache, glance/api/v2/cached_images.py) over this
// node's storage.Cache: the cache holds blobs by digest; this side speaks of images.

// CachedImage is one image whose disk this node's cache holds.
type CachedImage struct {
	ImageID      string
	Hits         int64
	LastAccessed time.Time
	LastModified time.Time
	Size         int64
}

// CacheState is what GET /v2/cache answers: cached images (most recently used first) and
// the ids waiting in the prefetch queue (oldest first).
type CacheState struct {
	Cached []CachedImage
	Queued []string
}

// Cache clear targets (x-image-cache-clear-target): both when empty.
const (
	ClearCache = "cache"
	ClearQueue = "queue"
)

// CacheEnabled reports whether this node has an image cache (--cache-dir).
func (c *Catalog) CacheEnabled() bool { return c.store.Cache != nil }

// allowCache applies one of the cache policies, then says 404 when this node has no
// cache, in Glance's order.
func (c *Catalog) allowCache(ctx context.Context, pr auth.Principal, act auth.ImageAction) error {
	ok, err := c.policy.AllowImage(ctx, pr, auth.ImageFacts{}, act, "")
	if err != nil {
		return err
	}
	if !ok {
		return errorf(Forbidden, "You are not authorized to complete %s action.", act)
	}
	if !c.CacheEnabled() {
		return errorf(NotFound, "Caching via API is not supported at this site.")
	}
	return nil
}

// CacheList is GET /v2/cache: the images this node caches and has queued. An entry names
// an image only while that image exists, is not deleted and still has that disk, so a
// deleted image is never listed (nor served: reads ask the blob record first).
func (c *Catalog) CacheList(ctx context.Context, pr auth.Principal) (CacheState, error) {
	st := CacheState{Cached: []CachedImage{}, Queued: []string{}}
	if err := c.allowCache(ctx, pr, auth.ImageCacheList); err != nil {
		return st, err
	}
	for _, e := range c.store.Cache.Entries() {
		for _, id := range e.Images {
			if !c.hasDisk(ctx, id, e.Digest.String()) {
				continue
			}
			st.Cached = append(st.Cached, CachedImage{ImageID: id, Hits: e.Hits,
				LastAccessed: e.LastAccessed, LastModified: e.LastModified, Size: e.Size})
		}
	}
	queued, err := c.store.Cache.Queued()
	if err != nil {
		return st, err
	}
	for _, q := range queued {
		st.Queued = append(st.Queued, q.Image)
	}
	return st, nil
}

// hasDisk reports whether image id exists, is not deleted, and its disk is blob d.
func (c *Catalog) hasDisk(ctx context.Context, id, d string) bool {
	img, _, err := c.load(ctx, id)
	return err == nil && img.Status != StatusDeleted && img.DiskDigest == d
}

// CacheQueue is PUT /v2/cache/{id}: queue an active image's disk for fetching into this
// node's cache (the prefetch worker takes it at once). Like Glance it looks the image up
// before the policy: an unknown image is 404 to anyone.
func (c *Catalog) CacheQueue(ctx context.Context, pr auth.Principal, id string) error {
	img, ms, err := c.load(ctx, id)
	if errors.Is(err, ErrNotFound) || err == nil && img.Status == StatusDeleted {
		return errorf(NotFound, "Image %s not found.", id)
	}
	if err != nil {
		return err
	}
	// Glance looks the image up as the caller: one it may not see is not found, before
	// the cache policy is asked.
	if err := c.allow(ctx, pr, img, ms, auth.ImageGet); err != nil {
		return err
	}
	if err := c.allowCache(ctx, pr, auth.ImageCacheImage); err != nil {
		return err
	}
	if img.Status != StatusActive || img.DiskDigest == "" {
		return errorf(BadRequest, "Only images with status active can be targeted for queueing")
	}
	d, err := storage.ParseDigest(img.DiskDigest)
	if err != nil {
		return err
	}
	if c.store.Cache.Has(d) {
		// Already here: name the image on the entry, nothing to fetch.
		return c.store.Cache.Tag(d, img.ID)
	}
	return c.store.Cache.Queue(img.ID, d)
}

// CacheDelete is DELETE /v2/cache/{id}: remove the image from this node's cache and
// queue. It is 404 only when the image neither exists nor is cached or queued here.
func (c *Catalog) CacheDelete(ctx context.Context, pr auth.Principal, id string) error {
	img, ms, err := c.load(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	exists := err == nil
	// As in CacheQueue: an image the caller may not see is not found.
	if exists {
		if err := c.allow(ctx, pr, img, ms, auth.ImageGet); err != nil {
			return err
		}
	}
	if !exists && !(c.CacheEnabled() && c.cachedOrQueued(id)) {
		return errorf(NotFound, "Image %s not found.", id)
	}
	if err := c.allowCache(ctx, pr, auth.ImageCacheDelete); err != nil {
		return err
	}
	if _, err := c.store.Cache.Dequeue(id); err != nil {
		return err
	}
	for _, e := range c.store.Cache.Entries() {
		if slices.Contains(e.Images, id) || exists && e.Digest.String() == img.DiskDigest {
			c.store.Cache.Evict(e.Digest)
		}
	}
	return nil
}

// cachedOrQueued reports whether image id is named by a cache entry or queued here.
func (c *Catalog) cachedOrQueued(id string) bool {
	for _, e := range c.store.Cache.Entries() {
		if slices.Contains(e.Images, id) {
			return true
		}
	}
	queued, _ := c.store.Cache.Queued()
	return slices.ContainsFunc(queued, func(q storage.QueuedBlob) bool { return q.Image == id })
}

// CacheClear is DELETE /v2/cache: empty this node's cache, its queue, or both (target
// "cache", "queue" or ""; anything else is 400, checked after the policy as Glance does).
func (c *Catalog) CacheClear(ctx context.Context, pr auth.Principal, target string) error {
	if err := c.allowCache(ctx, pr, auth.ImageCacheDelete); err != nil {
		return err
	}
	target = strings.ToLower(target)
	if target != "" && target != ClearCache && target != ClearQueue {
		return errorf(BadRequest, "If provided 'x-image-cache-clear-target' must be 'cache', 'queue' or empty string.")
	}
	if target != ClearCache {
		if _, err := c.store.Cache.ClearQueue(); err != nil {
			return err
		}
	}
	if target != ClearQueue {
		c.store.Cache.Clear()
	}
	return nil
}
