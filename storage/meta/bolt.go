package meta

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names of the embedded store. Sets are stored as keys "<set>\x00<member>" in one
// bucket, so a set's members are contiguous and in byte order; their counts live apart so
// SetLen does not scan.
var (
	bucketKV     = []byte("kv")
	bucketSets   = []byte("sets")
	bucketSetLen = []byte("setlen")
)

// Bolt is the embedded metadata store: one bbolt file, single node.
type Bolt struct {
	db *bolt.DB
}

// OpenBolt opens (creating if needed) the bbolt file at path. It waits at most timeout for
// another process holding the file to let go.
func OpenBolt(path string, timeout time.Duration) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("open metadata store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketKV, bucketSets, bucketSetLen} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init metadata store %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

func (b *Bolt) View(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (b *Bolt) Update(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (b *Bolt) Ping(context.Context) error { return nil }

func (b *Bolt) Close() error { return b.db.Close() }

type boltTx struct{ tx *bolt.Tx }

func (t boltTx) Get(key string) ([]byte, error) {
	v := t.tx.Bucket(bucketKV).Get([]byte(key))
	if v == nil {
		return nil, ErrNotFound
	}
	// bbolt's slices are valid only inside the transaction.
	return bytes.Clone(v), nil
}

func (t boltTx) Put(key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return t.tx.Bucket(bucketKV).Put([]byte(key), value)
}

func (t boltTx) Delete(key string) error {
	return t.tx.Bucket(bucketKV).Delete([]byte(key))
}

func setKey(set, member string) []byte {
	k := make([]byte, 0, len(set)+1+len(member))
	k = append(k, set...)
	k = append(k, 0)
	return append(k, member...)
}

func (t boltTx) SetAdd(set, member string) error {
	b := t.tx.Bucket(bucketSets)
	k := setKey(set, member)
	if b.Get(k) != nil {
		return nil
	}
	if err := b.Put(k, []byte{}); err != nil {
		return err
	}
	return t.addLen(set, 1)
}

func (t boltTx) SetRemove(set, member string) error {
	b := t.tx.Bucket(bucketSets)
	k := setKey(set, member)
	if b.Get(k) == nil {
		return nil
	}
	if err := b.Delete(k); err != nil {
		return err
	}
	return t.addLen(set, -1)
}

func (t boltTx) SetHas(set, member string) (bool, error) {
	return t.tx.Bucket(bucketSets).Get(setKey(set, member)) != nil, nil
}

func (t boltTx) SetRange(set, after string, limit int) ([]string, error) {
	prefix := setKey(set, "")
	c := t.tx.Bucket(bucketSets).Cursor()
	var out []string
	k, _ := c.Seek(setKey(set, after))
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		m := string(k[len(prefix):])
		if m == after {
			continue
		}
		out = append(out, m)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

func (t boltTx) SetRangeDesc(set, before string, limit int) ([]string, error) {
	prefix := setKey(set, "")
	c := t.tx.Bucket(bucketSets).Cursor()
	// Seek to the first key at or past the bound (past the set: its separator byte + 1),
	// then step back.
	bound := setKey(set, before)
	if before == "" {
		bound = append([]byte(set), 1)
	}
	k, _ := c.Seek(bound)
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	var out []string
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
		out = append(out, string(k[len(prefix):]))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

func (t boltTx) SetLen(set string) (int64, error) {
	v := t.tx.Bucket(bucketSetLen).Get([]byte(set))
	if len(v) != 8 {
		return 0, nil
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

func (t boltTx) addLen(set string, delta int64) error {
	n, _ := t.SetLen(set)
	n += delta
	b := t.tx.Bucket(bucketSetLen)
	if n <= 0 {
		return b.Delete([]byte(set))
	}
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, uint64(n))
	return b.Put([]byte(set), v)
}
