package storage

import (
	"container/list"
	"sync"

	"github.com/opencontainers/go-digest"
)

// contentCache keeps recently used small content (manifests) in memory by digest. Content
// under a digest never changes, so the cache can never be stale; it only bounds its size.
type contentCache struct {
	mu    sync.Mutex
	max   int
	size  int
	order *list.List // front = most recent
	items map[digest.Digest]*list.Element
}

type cacheEntry struct {
	d digest.Digest
	b []byte
}

func newContentCache(max int) *contentCache {
	return &contentCache{max: max, order: list.New(), items: map[digest.Digest]*list.Element{}}
}

func (c *contentCache) get(d digest.Digest) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[d]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).b, true
}

func (c *contentCache) put(d digest.Digest, b []byte) {
	if len(b) > c.max/16 {
		return // one huge manifest should not flush everything else
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[d]; ok {
		return
	}
	c.items[d] = c.order.PushFront(&cacheEntry{d: d, b: b})
	c.size += len(b)
	for c.size > c.max {
		e := c.order.Back()
		ent := e.Value.(*cacheEntry)
		c.order.Remove(e)
		delete(c.items, ent.d)
		c.size -= len(ent.b)
	}
}
