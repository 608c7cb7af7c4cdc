package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// Cache is the node-local image cache (Glance's image cache, registry-wide): whole copies
// of blobs read from remote stores, content-addressed, size-bounded, evicted least recently
// used first. It never decides whether a blob may be read: Store asks the metadata store
// first, so a blob that was deleted or collected is never served from here, and a store's
// Remove evicts its copy. Its directory:
//
//	blobs/<alg>/<hex>   a complete blob, verified by digest before it was renamed here
//	incomplete/         fills in progress (emptied at open: a fill never survives a restart)
//	index.db            bbolt: entries (digest → size, hits, times, images) and the prefetch
//	                    queue (image id → digest), so a restart keeps both and the LRU order
//
// One Cache serves every remote store it wraps (Wrap): the same digest is the same bytes.
type Cache struct {
	dir string
	max int64
	db  *bolt.DB
	// Now is the clock; tests replace it.
	Now func() time.Time
	// Log takes failures that cannot fail the read they happen in.
	Log *slog.Logger

	mu      sync.Mutex
	entries map[digest.Digest]*CacheEntry
	size    int64
	filling map[digest.Digest]*cacheFill // fills in progress: one per digest
	kick    chan struct{}                // a prefetch was queued

	commits sync.WaitGroup // fills whose reader is done, being completed and committed
	// dirty are entries whose hits and access time changed since the index last had them;
	// flushHits writes them every hitFlush (and at Close), so a hit costs no fsync and a
	// restart keeps the LRU order but for the last moments.
	dirty     map[digest.Digest]struct{}
	stopFlush chan struct{}
	flushed   chan struct{}

	hits, misses, hitBytes, filledBytes, fills, discarded atomic.Int64
}

// CacheEntry is one cached blob. Images are the image ids the blob was cached for (a
// prefetch, an Image API download); the catalog checks them before it names them.
type CacheEntry struct {
	Digest       digest.Digest `json:"digest"`
	Size         int64         `json:"size"`
	Hits         int64         `json:"hits"`
	LastAccessed time.Time     `json:"last_accessed"`
	LastModified time.Time     `json:"last_modified"`
	Key          string        `json:"key,omitempty"` // the store key it was filled from
	Images       []string      `json:"images,omitempty"`
}

// QueuedBlob is one prefetch request: image Image, whose disk is Digest.
type QueuedBlob struct {
	Image  string        `json:"image"`
	Digest digest.Digest `json:"digest"`
	Queued time.Time     `json:"queued"`
}

// CacheStats are the cache's counters since start and its present content (/metrics).
type CacheStats struct {
	Hits, Misses, HitBytes, FilledBytes, Fills, Discarded int64
	Entries, Size, MaxSize                                int64
}

var (
	bucketEntries = []byte("entries")
	bucketQueue   = []byte("queue")
)

// OpenCache opens (creating) the cache in dir, bounded to max bytes.
func OpenCache(dir string, max int64) (*Cache, error) {
	if max <= 0 {
		return nil, fmt.Errorf("cache size %d: want a positive number of bytes", max)
	}
	if err := os.RemoveAll(filepath.Join(dir, "incomplete")); err != nil {
		return nil, fmt.Errorf("cache: clear incomplete fills: %w", err)
	}
	for _, d := range []string{"blobs", "incomplete"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("cache: create %s: %w", d, err)
		}
	}
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o640, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("cache index %s: %w", dir, err)
	}
	c := &Cache{dir: dir, max: max, db: db, Now: time.Now, Log: slog.Default(),
		entries: map[digest.Digest]*CacheEntry{}, filling: map[digest.Digest]*cacheFill{}, kick: make(chan struct{}, 1),
		dirty: map[digest.Digest]struct{}{}, stopFlush: make(chan struct{}), flushed: make(chan struct{})}
	if err := c.load(); err != nil {
		db.Close()
		return nil, err
	}
	go c.runFlush()
	// A smaller --cache-max-size than last time takes effect at once.
	c.mu.Lock()
	c.evictToFit(0)
	c.mu.Unlock()
	return c, nil
}

// load reads the index, dropping entries whose file is gone or has the wrong size.
func (c *Cache) load() error {
	var stale []digest.Digest
	err := c.db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketQueue); err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists(bucketEntries)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var e CacheEntry
			if json.Unmarshal(v, &e) != nil || e.Digest.Validate() != nil {
				stale = append(stale, digest.Digest(k))
				return nil
			}
			if st, err := os.Stat(c.path(e.Digest)); err != nil || st.Size() != e.Size {
				stale = append(stale, e.Digest)
				return nil
			}
			c.entries[e.Digest] = &e
			c.size += e.Size
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("cache index: %w", err)
	}
	for _, d := range stale {
		c.drop(d)
	}
	return c.removeStrays()
}

// removeStrays deletes files under blobs/ that the index does not name: a fill renamed in
// place by a process that died before it wrote the index entry.
func (c *Cache) removeStrays() error {
	root := filepath.Join(c.dir, "blobs")
	return filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		alg, _ := filepath.Rel(root, filepath.Dir(p))
		if _, ok := c.entries[digest.NewDigestFromEncoded(digest.Algorithm(alg), e.Name())]; !ok {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("cache: remove stray %s: %w", p, err)
			}
		}
		return nil
	})
}

// Flush waits for the fills whose readers are done: completed from the store where the
// writer was detached, verified, and committed or discarded.
func (c *Cache) Flush() { c.commits.Wait() }

// Close waits for the fills being committed, writes the last hits and closes the index.
func (c *Cache) Close() error {
	c.Flush()
	close(c.stopFlush)
	<-c.flushed
	return c.db.Close()
}

// hitFlush is how often hits reach the index.
const hitFlush = time.Second

func (c *Cache) runFlush() {
	defer close(c.flushed)
	t := time.NewTicker(hitFlush)
	defer t.Stop()
	for {
		select {
		case <-c.stopFlush:
			c.flushHits()
			return
		case <-t.C:
			c.flushHits()
		}
	}
}

// flushHits writes the entries hit since the last flush to the index, in one transaction.
func (c *Cache) flushHits() {
	c.mu.Lock()
	var es []CacheEntry
	for d := range c.dirty {
		if e, ok := c.entries[d]; ok {
			es = append(es, *e)
		}
	}
	clear(c.dirty)
	c.mu.Unlock()
	if len(es) == 0 {
		return
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, e := range es {
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketEntries).Put([]byte(e.Digest), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		c.Log.Warn("cache: record hits", "entries", len(es), "err", err)
	}
}

// MaxSize is the bound on the bytes the cache keeps.
func (c *Cache) MaxSize() int64 { return c.max }

func (c *Cache) path(d digest.Digest) string {
	return filepath.Join(c.dir, "blobs", string(d.Algorithm()), d.Encoded())
}

// putEntry writes e to the index and takes the images it names off the prefetch queue, at
// once: an image is never listed as both cached and queued.
func (c *Cache) putEntry(e CacheEntry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return c.db.Update(func(tx *bolt.Tx) error {
		for _, img := range e.Images {
			if err := tx.Bucket(bucketQueue).Delete([]byte(img)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketEntries).Put([]byte(e.Digest), v)
	})
}

// drop removes d's file and index entry (not its accounting: the caller holds mu for that).
func (c *Cache) drop(d digest.Digest) {
	if err := os.Remove(c.path(d)); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.Log.Warn("cache: remove blob", "digest", d, "err", err)
	}
	if err := c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEntries).Delete([]byte(d)) }); err != nil {
		c.Log.Warn("cache: remove index entry", "digest", d, "err", err)
	}
}

// evictLocked removes d from the cache; mu is held.
func (c *Cache) evictLocked(d digest.Digest) bool {
	e, ok := c.entries[d]
	if !ok {
		return false
	}
	delete(c.entries, d)
	delete(c.dirty, d)
	c.size -= e.Size
	c.drop(d)
	return true
}

// evictToFit evicts least recently used entries until need more bytes fit; mu is held.
func (c *Cache) evictToFit(need int64) {
	for c.size+need > c.max && len(c.entries) > 0 {
		var lru *CacheEntry
		for _, e := range c.entries {
			if lru == nil || e.LastAccessed.Before(lru.LastAccessed) {
				lru = e
			}
		}
		c.evictLocked(lru.Digest)
	}
}

// Evict removes the cached copy of d; it reports whether there was one.
func (c *Cache) Evict(d digest.Digest) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evictLocked(d)
}

// evictKey removes the copy filled from store key key (the store removed the object).
func (c *Cache) evictKey(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for d, e := range c.entries {
		if e.Key == key {
			c.evictLocked(d)
		}
	}
}

// Clear empties the cache (not the queue) and returns how many entries it removed.
func (c *Cache) Clear() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for d := range c.entries {
		if c.evictLocked(d) {
			n++
		}
	}
	return n
}

// Entries lists the cached blobs, most recently used first.
func (c *Cache) Entries() []CacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]CacheEntry, 0, len(c.entries))
	for _, e := range c.entries {
		cp := *e
		cp.Images = slices.Clone(e.Images)
		out = append(out, cp)
	}
	slices.SortFunc(out, func(a, b CacheEntry) int { return b.LastAccessed.Compare(a.LastAccessed) })
	return out
}

// Has reports whether d is cached.
func (c *Cache) Has(d digest.Digest) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[d]
	return ok
}

// Tag records that d was cached for image (GET /v2/cache names images, not blobs).
func (c *Cache) Tag(d digest.Digest, image string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[d]
	if !ok || slices.Contains(e.Images, image) {
		return nil
	}
	e.Images = append(e.Images, image)
	return c.putEntry(*e)
}

// Stats returns the counters and the present content.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	n, size := int64(len(c.entries)), c.size
	c.mu.Unlock()
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), HitBytes: c.hitBytes.Load(),
		FilledBytes: c.filledBytes.Load(), Fills: c.fills.Load(), Discarded: c.discarded.Load(),
		Entries: n, Size: size, MaxSize: c.max}
}

// open returns the cached file of d, counting a hit, or nil when d is not cached.
func (c *Cache) open(d digest.Digest, size int64) *os.File {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[d]
	if !ok {
		return nil
	}
	f, err := os.Open(c.path(d))
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil && (st.Size() != e.Size || e.Size != size) {
			err = fmt.Errorf("cached size %d, record says %d", st.Size(), size)
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		c.Log.Warn("cache: entry unusable, evicted", "digest", d, "err", err)
		c.evictLocked(d)
		return nil
	}
	e.Hits++
	e.LastAccessed = c.Now()
	c.dirty[d] = struct{}{} // written by flushHits, off the read's path
	c.hits.Add(1)
	c.hitBytes.Add(size)
	return f
}

// beginFill reserves the fill t of t.d and makes its file (t.f). It returns false, with
// the fill of d under way if there is one, when d is being filled already (one fill per
// digest: other readers follow it), does not fit the cache at all, or the file cannot be
// made.
func (c *Cache) beginFill(t *cacheFill) (bool, *cacheFill) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if other := c.filling[t.d]; other != nil {
		return false, other
	}
	if t.size > c.max || c.entries[t.d] != nil {
		return false, nil
	}
	f, err := os.CreateTemp(filepath.Join(c.dir, "incomplete"), t.d.Encoded()+"-*")
	if err != nil {
		c.Log.Warn("cache: begin fill", "digest", t.d, "err", err)
		return false, nil
	}
	t.f = f
	c.filling[t.d] = t
	return true, nil
}

// fillOf returns the fill of d under way, or nil.
func (c *Cache) fillOf(d digest.Digest) *cacheFill {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.filling[d]
}

// endFill ends fill t, whose writer stopped with err (nil: all its bytes are in the file).
// A complete file is read back and becomes the entry only if its digest is t's, once it is
// on disk; otherwise, or when incomplete, it is discarded. Either way the reservation ends.
// complete says the reader delivered every byte (a failure is then worth a warning).
func (c *Cache) endFill(t *cacheFill, err error, complete bool) {
	d, key, image, size, f := t.d, t.key, t.image, t.size, t.f
	defer os.Remove(f.Name()) // a no-op after the rename
	defer t.publishEnd()      // after the unlock: followers read on from their own descriptors
	if err == nil {
		err = verifyFill(f, d, size, t.usedDIO)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.filling, d)
	if err != nil {
		c.discarded.Add(1)
		if complete { // the store's bytes are not the blob's, or a disk or the store failed
			c.Log.Warn("cache: fill discarded", "digest", d, "err", err)
		} else {
			c.Log.Debug("cache: fill discarded", "digest", d, "err", err)
		}
		return
	}
	c.evictToFit(size)
	dst := c.path(d)
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		c.Log.Warn("cache: commit fill", "digest", d, "err", err)
		return
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		c.Log.Warn("cache: commit fill", "digest", d, "err", err)
		return
	}
	now := c.Now()
	e := &CacheEntry{Digest: d, Size: size, LastAccessed: now, LastModified: now, Key: key}
	if image != "" {
		e.Images = []string{image}
	}
	if err := c.putEntry(*e); err != nil {
		c.Log.Warn("cache: index fill", "digest", d, "err", err)
		os.Remove(dst)
		return
	}
	c.entries[d] = e
	c.size += size
	c.fills.Add(1)
	c.filledBytes.Add(size)
}

// Queue asks for image's disk d to be fetched into the cache (Glance's PUT
// /v2/cache/{image_id}); the prefetch worker (Store.RunPrefetch) takes it.
func (c *Cache) Queue(image string, d digest.Digest) error {
	v, err := json.Marshal(QueuedBlob{Image: image, Digest: d, Queued: c.Now()})
	if err != nil {
		return err
	}
	if err := c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketQueue).Put([]byte(image), v) }); err != nil {
		return fmt.Errorf("cache queue %s: %w", image, err)
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

// Queued lists the prefetch queue, oldest first.
func (c *Cache) Queued() ([]QueuedBlob, error) {
	var out []QueuedBlob
	err := c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketQueue).ForEach(func(_, v []byte) error {
			var q QueuedBlob
			if json.Unmarshal(v, &q) == nil {
				out = append(out, q)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cache queue: %w", err)
	}
	slices.SortFunc(out, func(a, b QueuedBlob) int { return a.Queued.Compare(b.Queued) })
	return out, nil
}

// Dequeue removes image from the prefetch queue; it reports whether it was there.
func (c *Cache) Dequeue(image string) (bool, error) {
	var found bool
	err := c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketQueue)
		found = b.Get([]byte(image)) != nil
		return b.Delete([]byte(image))
	})
	if err != nil {
		return false, fmt.Errorf("cache dequeue %s: %w", image, err)
	}
	return found, nil
}

// ClearQueue empties the prefetch queue and returns how many it removed.
func (c *Cache) ClearQueue() (int, error) {
	var n int
	err := c.db.Update(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketQueue).Stats().KeyN
		if err := tx.DeleteBucket(bucketQueue); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketQueue)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("clear cache queue: %w", err)
	}
	return n, nil
}

type cacheImageKey struct{}

// WithCacheImage says that reads under ctx are of image id's disk, so a cache entry they
// fill or hit lists id (Glance's cache lists images).
func WithCacheImage(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, cacheImageKey{}, id)
}

type noFillKey struct{}

// WithoutCacheFill marks reads under ctx as the server's own passes over a blob (hashing,
// inspecting what was just written): they use a cached copy but do not fill the cache, which
// is for what clients read (Glance caches client downloads only).
func WithoutCacheFill(ctx context.Context) context.Context {
	return context.WithValue(ctx, noFillKey{}, true)
}

type fillOnlyKey struct{}

// fillOnly marks reads under ctx as made only to fill the cache (a prefetch): nobody waits
// for their bytes, so the cache writer sets their pace instead of being detached (which
// would read the object from the store a second time).
func fillOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, fillOnlyKey{}, true)
}

func cacheImage(ctx context.Context) string {
	id, _ := ctx.Value(cacheImageKey{}).(string)
	return id
}

// WrapAll puts the cache in front of every remote store of stores.
func (c *Cache) WrapAll(stores []NamedStore) []NamedStore {
	out := make([]NamedStore, len(stores))
	for i, n := range stores {
		out[i] = NamedStore{Name: n.Name, Store: c.Wrap(n.Store)}
	}
	return out
}

// Wrap returns b with this cache in front of its reads. Stores whose objects are local
// files (FileOpener) gain nothing and are returned as they are.
func (c *Cache) Wrap(b BlobStore) BlobStore {
	if _, local := b.(FileOpener); local {
		return b
	}
	return &cachedStore{BlobStore: b, c: c}
}

// cachedStore is a remote BlobStore behind the node's cache.
type cachedStore struct {
	BlobStore
	c *Cache
}

// digestOpener is a BlobStore that can use the digest of what it opens (the cache); Store
// prefers it to a plain Open.
type digestOpener interface {
	openDigest(ctx context.Context, key string, d digest.Digest, size int64) (ReadSeekCloser, error)
}

// openDigest serves d from the cache (a file: sendfile) or streams it from the store,
// filling the cache on the way when the read goes from the start to the end.
func (s *cachedStore) openDigest(ctx context.Context, key string, d digest.Digest, size int64) (ReadSeekCloser, error) {
	if f := s.c.open(d, size); f != nil {
		if img := cacheImage(ctx); img != "" {
			if err := s.c.Tag(d, img); err != nil {
				s.c.Log.Warn("cache: tag entry", "digest", d, "image", img, "err", err)
			}
		}
		return f, nil
	}
	s.c.misses.Add(1)
	br := &blobReader{ctx: ctx, b: s.BlobStore, key: key, size: size}
	// A fill under way shows the object is there: a reader that follows it opens no stream
	// of its own (one is opened at its first read that needs it).
	if s.c.fillOf(d) == nil {
		if err := br.openAt(0); err != nil {
			return nil, err
		}
	}
	// The fill begins with the first read, if that reads from byte 0: ranged reads (qemu's
	// over a signed URL) never make a cache file.
	return &fillReader{blobReader: br, c: s.c, d: d, image: cacheImage(ctx), mayFill: ctx.Value(noFillKey{}) == nil}, nil
}

// Remove removes the object and the cache's copy of it.
func (s *cachedStore) Remove(ctx context.Context, key string) (bool, error) {
	ok, err := s.BlobStore.Remove(ctx, key)
	if err == nil {
		s.c.evictKey(key)
	}
	return ok, err
}

// RedirectURL hands out the store's URL only for blobs this node does not hold: a cached
// blob is served from here.
func (s *cachedStore) RedirectURL(ctx context.Context, key string) (string, bool, error) {
	rd, ok := s.BlobStore.(Redirector)
	if !ok {
		return "", false, nil
	}
	s.c.mu.Lock()
	for _, e := range s.c.entries {
		if e.Key == key {
			s.c.mu.Unlock()
			return "", false, nil
		}
	}
	s.c.mu.Unlock()
	return rd.RedirectURL(ctx, key)
}

// Ping asks the store behind.
func (s *cachedStore) Ping(ctx context.Context) error {
	if p, ok := s.BlobStore.(Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}
