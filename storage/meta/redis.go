package meta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the shared metadata store. Keys are strings under a prefix; sets are sorted sets
// with score 0, so ZRANGE BYLEX gives byte order. Update is optimistic: every key read is
// WATCHed, writes are queued and applied in one MULTI/EXEC, and the transaction is retried
// when a watched key changed.
type Redis struct {
	c      *redis.Client
	prefix string
	// wait is how many replicas must hold a transaction's writes before Update returns
	// (WAIT, best effort within waitTimeout): a primary lost in a failover then takes no
	// acknowledged write with it while the replicas keep up.
	wait        int
	waitTimeout time.Duration
}

// maxRetries bounds how often Update re-runs a transaction that lost a race.
const maxRetries = 200

// OpenRedis connects to the Redis server at url and checks it answers: redis://host:port/db
// for one server, or redis+sentinel://[:password@]host:port[,host:port]/master[/db] for a
// primary that Sentinel fails over (ParseRedisURL).
func OpenRedis(ctx context.Context, url, prefix string) (*Redis, error) {
	c, sc, where, err := newRedisClient(url)
	if err != nil {
		return nil, err
	}
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to redis %s: %w", where, unavailable(err))
	}
	return &Redis{c: c, prefix: prefix, wait: sc.WaitReplicas, waitTimeout: sc.WaitTimeout}, nil
}

func (r *Redis) Ping(ctx context.Context) error { return unavailable(r.c.Ping(ctx).Err()) }

func (r *Redis) Close() error { return r.c.Close() }

func (r *Redis) key(k string) string { return r.prefix + "k:" + k }
func (r *Redis) set(s string) string { return r.prefix + "s:" + s }

func (r *Redis) View(ctx context.Context, fn func(Tx) error) error {
	return unavailable(fn(&redisTx{ctx: ctx, r: r, cmd: r.c}))
}

func (r *Redis) Update(ctx context.Context, fn func(Tx) error) error {
	return unavailable(r.update(ctx, fn))
}

func (r *Redis) update(ctx context.Context, fn func(Tx) error) error {
	for attempt := 0; attempt < maxRetries; attempt++ {
		err := r.c.Watch(ctx, func(tx *redis.Tx) error {
			t := &redisTx{ctx: ctx, r: r, cmd: tx, tx: tx, overlay: newOverlay()}
			if err := fn(t); err != nil {
				return err
			}
			if t.overlay.empty() {
				return nil
			}
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				t.overlay.apply(ctx, r, p)
				return nil
			})
			if err == nil && r.wait > 0 {
				// On the connection that wrote: WAIT counts this connection's writes. A
				// replica that does not answer in time costs latency, not the write.
				tx.Wait(ctx, r.wait, r.waitTimeout)
			}
			return err
		})
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		// Lost a race: back off a little, growing, so hot keys settle.
		time.Sleep(time.Duration(attempt+1) * 200 * time.Microsecond)
	}
	return ErrConflict
}

// redisTx reads through cmd (the watched connection inside Update) and, inside Update,
// queues writes in overlay until commit.
type redisTx struct {
	ctx     context.Context
	r       *Redis
	cmd     redis.Cmdable
	tx      *redis.Tx // nil in View
	overlay *overlay  // nil in View
}

var errReadOnly = errors.New("meta: write in a read-only transaction")

func (t *redisTx) watch(key string) error {
	if t.tx == nil {
		return nil
	}
	return t.tx.Watch(t.ctx, key).Err()
}

func (t *redisTx) Get(key string) ([]byte, error) {
	if t.overlay != nil {
		if v, deleted, ok := t.overlay.get(key); ok {
			if deleted {
				return nil, ErrNotFound
			}
			return v, nil
		}
	}
	k := t.r.key(key)
	if err := t.watch(k); err != nil {
		return nil, err
	}
	v, err := t.cmd.Get(t.ctx, k).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	return v, err
}

func (t *redisTx) Put(key string, value []byte) error {
	if t.overlay == nil {
		return errReadOnly
	}
	t.overlay.put(key, value)
	return nil
}

func (t *redisTx) Delete(key string) error {
	if t.overlay == nil {
		return errReadOnly
	}
	t.overlay.del(key)
	return nil
}

func (t *redisTx) SetAdd(set, member string) error {
	if t.overlay == nil {
		return errReadOnly
	}
	t.overlay.setOp(set, member, true)
	return nil
}

func (t *redisTx) SetRemove(set, member string) error {
	if t.overlay == nil {
		return errReadOnly
	}
	t.overlay.setOp(set, member, false)
	return nil
}

func (t *redisTx) SetHas(set, member string) (bool, error) {
	if t.overlay != nil {
		if add, ok := t.overlay.sets[set][member]; ok {
			return add, nil
		}
	}
	k := t.r.set(set)
	if err := t.watch(k); err != nil {
		return false, err
	}
	_, err := t.cmd.ZScore(t.ctx, k, member).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return err == nil, err
}

func (t *redisTx) SetRange(set, after string, limit int) ([]string, error) {
	return t.setRange(set, after, limit, false)
}

func (t *redisTx) SetRangeDesc(set, before string, limit int) ([]string, error) {
	return t.setRange(set, before, limit, true)
}

// setRange lists members past from ("": from the start) in byte order, or in reverse.
func (t *redisTx) setRange(set, from string, limit int, desc bool) ([]string, error) {
	k := t.r.set(set)
	if err := t.watch(k); err != nil {
		return nil, err
	}
	var ops map[string]bool
	if t.overlay != nil {
		ops = t.overlay.sets[set]
	}
	// past: m lies beyond bound in the walk's direction.
	past := func(m, bound string) bool {
		if desc {
			return m < bound
		}
		return m > bound
	}
	// Ask for enough extra members to cover the ones this transaction removed.
	fetch := int64(limit)
	if limit > 0 {
		fetch += int64(len(ops))
	}
	args := redis.ZRangeArgs{Key: k, Start: "-", Stop: "+", ByLex: true}
	if desc {
		args.Start, args.Stop, args.Rev = "+", "-", true
	}
	if from != "" {
		args.Start = "(" + from
	}
	if limit > 0 {
		args.Count = fetch
	}
	members, err := t.cmd.ZRangeArgs(t.ctx, args).Result()
	if err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		return members, nil
	}
	merged := make([]string, 0, len(members)+len(ops))
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		seen[m] = true
		if add, ok := ops[m]; ok && !add {
			continue
		}
		merged = append(merged, m)
	}
	// Members this transaction added join where they fall, unless they fall beyond the
	// last one fetched from an incomplete answer.
	complete := limit <= 0 || int64(len(members)) < fetch
	var last string
	if !complete && len(members) > 0 {
		last = members[len(members)-1]
	}
	for m, add := range ops {
		if !add || seen[m] || (from != "" && !past(m, from)) || (!complete && past(m, last)) {
			continue
		}
		merged = append(merged, m)
	}
	sort.Strings(merged)
	if desc {
		slices.Reverse(merged)
	}
	if limit > 0 && len(merged) > limit {
		merged = merged[:limit]
	}
	return merged, nil
}

func (t *redisTx) SetLen(set string) (int64, error) {
	k := t.r.set(set)
	if err := t.watch(k); err != nil {
		return 0, err
	}
	n, err := t.cmd.ZCard(t.ctx, k).Result()
	if err != nil || t.overlay == nil || len(t.overlay.sets[set]) == 0 {
		return n, err
	}
	for m, add := range t.overlay.sets[set] {
		_, err := t.cmd.ZScore(t.ctx, k, m).Result()
		present := err == nil
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, err
		}
		switch {
		case add && !present:
			n++
		case !add && present:
			n--
		}
	}
	return n, nil
}

// overlay holds an Update's writes until commit, in order-independent form: the last write
// to a key or set member wins.
type overlay struct {
	kv   map[string][]byte // nil value = deleted
	sets map[string]map[string]bool
}

func newOverlay() *overlay {
	return &overlay{kv: map[string][]byte{}, sets: map[string]map[string]bool{}}
}

func (o *overlay) empty() bool { return len(o.kv) == 0 && len(o.sets) == 0 }

func (o *overlay) get(key string) (v []byte, deleted, ok bool) {
	v, ok = o.kv[key]
	return v, ok && v == nil, ok
}

func (o *overlay) put(key string, value []byte) {
	v := make([]byte, len(value)) // never nil: nil marks a deletion
	copy(v, value)
	o.kv[key] = v
}

func (o *overlay) del(key string) { o.kv[key] = nil }

func (o *overlay) setOp(set, member string, add bool) {
	m := o.sets[set]
	if m == nil {
		m = map[string]bool{}
		o.sets[set] = m
	}
	m[member] = add
}

func (o *overlay) apply(ctx context.Context, r *Redis, p redis.Pipeliner) {
	for k, v := range o.kv {
		if v == nil {
			p.Del(ctx, r.key(k))
		} else {
			p.Set(ctx, r.key(k), v, 0)
		}
	}
	for s, ops := range o.sets {
		var add []redis.Z
		var rem []any
		for m, a := range ops {
			if a {
				add = append(add, redis.Z{Member: m})
			} else {
				rem = append(rem, m)
			}
		}
		if len(add) > 0 {
			p.ZAdd(ctx, r.set(s), add...)
		}
		if len(rem) > 0 {
			p.ZRem(ctx, r.set(s), rem...)
		}
	}
}
