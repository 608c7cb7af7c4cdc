package auth

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ttlCache remembers answers of an external service for a bounded time and a bounded number
// of entries, and lets concurrent askers of one key share a single load. Definitive refusals
// (ErrUnauthorized, ErrNotFound) are remembered too, for the shorter negTTL; faults never are.
type ttlCache[V any] struct {
	ttl, negTTL time.Duration
	max         int
	now         func() time.Time

	mu      sync.Mutex
	entries map[string]cacheEntry[V]
	loads   map[string]*cacheLoad[V]
}

type cacheEntry[V any] struct {
	v       V
	err     error
	expires time.Time
}

// cacheLoad is one load in flight; done closes when v and err are set.
type cacheLoad[V any] struct {
	done chan struct{}
	v    V
	err  error
}

func newTTLCache[V any](ttl, negTTL time.Duration, max int, now func() time.Time) *ttlCache[V] {
	return &ttlCache[V]{ttl: ttl, negTTL: negTTL, max: max, now: now,
		entries: map[string]cacheEntry[V]{}, loads: map[string]*cacheLoad[V]{}}
}

// cacheable reports whether err is an answer (remembered) rather than a fault (retried).
func cacheable(err error) bool {
	return errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrNotFound)
}

// get returns the remembered answer for key, or loads it. load returns the value and, when
// not zero, the time it stops being valid (a token's expiry), which caps the entry's life.
// The load runs detached from ctx's cancellation (other askers may wait for it); every call
// it makes carries its own timeout.
func (c *ttlCache[V]) get(ctx context.Context, key string, load func(context.Context) (V, time.Time, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok && c.now().Before(e.expires) {
		c.mu.Unlock()
		return e.v, e.err
	}
	l, inFlight := c.loads[key]
	if !inFlight {
		l = &cacheLoad[V]{done: make(chan struct{})}
		c.loads[key] = l
	}
	c.mu.Unlock()
	if inFlight {
		select {
		case <-l.done:
			return l.v, l.err
		case <-ctx.Done():
			var zero V
			return zero, ctx.Err()
		}
	}
	var until time.Time
	l.v, until, l.err = load(context.WithoutCancel(ctx))
	c.store(key, l, until)
	close(l.done)
	return l.v, l.err
}

// store records a finished load (when it is an answer) and forgets it as in flight.
func (c *ttlCache[V]) store(key string, l *cacheLoad[V], until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.loads, key)
	ttl := c.ttl
	if l.err != nil {
		if !cacheable(l.err) {
			return
		}
		ttl = c.negTTL
	}
	expires := c.now().Add(ttl)
	if !until.IsZero() && until.Before(expires) {
		expires = until
	}
	if len(c.entries) >= c.max {
		c.evict()
	}
	c.entries[key] = cacheEntry[V]{v: l.v, err: l.err, expires: expires}
}

// evict drops expired entries and, if that is not enough, about a tenth of the rest (in
// map order, which is random): the cache stays bounded, whatever is asked of it.
func (c *ttlCache[V]) evict() {
	now := c.now()
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	if len(c.entries) < c.max {
		return
	}
	drop := len(c.entries) - c.max + 1 + c.max/10
	for k := range c.entries {
		if drop <= 0 {
			break
		}
		delete(c.entries, k)
		drop--
	}
}

// len is how many entries are held (expired ones included until evicted).
func (c *ttlCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
