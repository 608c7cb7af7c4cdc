package meta_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage/meta"
)

// backends opens every metadata backend for the contract tests: the embedded bbolt file and a
// real redis-server.
func backends(t *testing.T) map[string]meta.Store {
	t.Helper()
	b, err := meta.OpenBolt(filepath.Join(t.TempDir(), "meta.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	r, err := meta.OpenRedis(context.Background(), testenv.StartRedis(t), "test:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return map[string]meta.Store{"bolt": b, "redis": r}
}

func TestContract(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("KV", func(t *testing.T) { testKV(t, s) })
			t.Run("Sets", func(t *testing.T) { testSets(t, s) })
			t.Run("ReadYourWrites", func(t *testing.T) { testReadYourWrites(t, s) })
			t.Run("Rollback", func(t *testing.T) { testRollback(t, s) })
			t.Run("Counter", func(t *testing.T) { testConcurrentCounter(t, s) })
		})
	}
}

var ctx = context.Background()

func testKV(t *testing.T, s meta.Store) {
	err := s.Update(ctx, func(tx meta.Tx) error {
		if err := tx.Put("a", []byte("1")); err != nil {
			return err
		}
		return tx.Put("empty", nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(ctx, func(tx meta.Tx) error {
		v, err := tx.Get("a")
		if err != nil || string(v) != "1" {
			return fmt.Errorf("get a = %q, %v", v, err)
		}
		v, err = tx.Get("empty")
		if err != nil || len(v) != 0 {
			return fmt.Errorf("get empty = %q, %v", v, err)
		}
		if _, err := tx.Get("missing"); !errors.Is(err, meta.ErrNotFound) {
			return fmt.Errorf("get missing: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx meta.Tx) error { return tx.Delete("a") }); err != nil {
		t.Fatal(err)
	}
	s.View(ctx, func(tx meta.Tx) error {
		if _, err := tx.Get("a"); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("after delete: %v", err)
		}
		return nil
	})
}

func testSets(t *testing.T, s meta.Store) {
	members := []string{"b", "a", "c/d", "C", "a-b", "a.b", "_x"}
	err := s.Update(ctx, func(tx meta.Tx) error {
		for _, m := range members {
			if err := tx.SetAdd("set1", m); err != nil {
				return err
			}
		}
		return tx.SetAdd("set1", "a") // duplicate
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"C", "_x", "a", "a-b", "a.b", "b", "c/d"}
	s.View(ctx, func(tx meta.Tx) error {
		got, err := tx.SetRange("set1", "", 0)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("range all = %v, %v; want %v", got, err, want)
		}
		got, _ = tx.SetRange("set1", "a", 2)
		if !reflect.DeepEqual(got, []string{"a-b", "a.b"}) {
			t.Errorf("range after a = %v", got)
		}
		got, _ = tx.SetRange("set1", "zzz", 2)
		if len(got) != 0 {
			t.Errorf("range past end = %v", got)
		}
		rev := slices.Clone(want)
		slices.Reverse(rev)
		got, err = tx.SetRangeDesc("set1", "", 0)
		if err != nil || !reflect.DeepEqual(got, rev) {
			t.Errorf("descending range all = %v, %v; want %v", got, err, rev)
		}
		got, _ = tx.SetRangeDesc("set1", "a.b", 2)
		if !reflect.DeepEqual(got, []string{"a-b", "a"}) {
			t.Errorf("descending range before a.b = %v", got)
		}
		got, _ = tx.SetRangeDesc("set1", "a.c", 1)
		if !reflect.DeepEqual(got, []string{"a.b"}) {
			t.Errorf("descending range before a.c (not a member) = %v", got)
		}
		got, _ = tx.SetRangeDesc("set1", "C", 2)
		if len(got) != 0 {
			t.Errorf("descending range before the first = %v", got)
		}
		got, _ = tx.SetRangeDesc("set1", "zzz", 1)
		if !reflect.DeepEqual(got, []string{"c/d"}) {
			t.Errorf("descending range before zzz = %v", got)
		}
		n, _ := tx.SetLen("set1")
		if n != int64(len(want)) {
			t.Errorf("len = %d", n)
		}
		if ok, _ := tx.SetHas("set1", "c/d"); !ok {
			t.Error("has c/d = false")
		}
		if ok, _ := tx.SetHas("set1", "zz"); ok {
			t.Error("has zz = true")
		}
		// A set whose name is a prefix of another stays apart.
		got, _ = tx.SetRange("set", "", 0)
		if len(got) != 0 {
			t.Errorf("prefix set = %v", got)
		}
		if got, _ = tx.SetRangeDesc("set", "", 0); len(got) != 0 {
			t.Errorf("prefix set, descending = %v", got)
		}
		if got, _ = tx.SetRangeDesc("set1", "", 0); len(got) != len(want) {
			t.Errorf("descending past a set named after it: %v", got)
		}
		return nil
	})
	s.Update(ctx, func(tx meta.Tx) error {
		tx.SetRemove("set1", "a")
		return tx.SetRemove("set1", "nope")
	})
	s.View(ctx, func(tx meta.Tx) error {
		n, _ := tx.SetLen("set1")
		if n != int64(len(want)-1) {
			t.Errorf("len after remove = %d", n)
		}
		return nil
	})
}

func testReadYourWrites(t *testing.T, s meta.Store) {
	err := s.Update(ctx, func(tx meta.Tx) error {
		tx.SetAdd("ryw", "m1")
		tx.SetAdd("ryw", "m3")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx meta.Tx) error {
		tx.Put("k", []byte("v"))
		if v, err := tx.Get("k"); err != nil || string(v) != "v" {
			return fmt.Errorf("own put not visible: %q %v", v, err)
		}
		tx.Delete("k")
		if _, err := tx.Get("k"); !errors.Is(err, meta.ErrNotFound) {
			return fmt.Errorf("own delete not visible: %v", err)
		}
		tx.SetAdd("ryw", "m2")
		tx.SetRemove("ryw", "m1")
		if ok, _ := tx.SetHas("ryw", "m2"); !ok {
			return errors.New("own SetAdd not visible")
		}
		got, err := tx.SetRange("ryw", "", 0)
		if err != nil || !reflect.DeepEqual(got, []string{"m2", "m3"}) {
			return fmt.Errorf("range in tx = %v %v", got, err)
		}
		got, _ = tx.SetRange("ryw", "", 1)
		if !reflect.DeepEqual(got, []string{"m2"}) {
			return fmt.Errorf("range limit 1 in tx = %v", got)
		}
		got, _ = tx.SetRangeDesc("ryw", "", 0)
		if !reflect.DeepEqual(got, []string{"m3", "m2"}) {
			return fmt.Errorf("descending range in tx = %v", got)
		}
		got, _ = tx.SetRangeDesc("ryw", "m3", 1)
		if !reflect.DeepEqual(got, []string{"m2"}) {
			return fmt.Errorf("descending range before m3, limit 1, in tx = %v", got)
		}
		got, _ = tx.SetRangeDesc("ryw", "", 1)
		if !reflect.DeepEqual(got, []string{"m3"}) {
			return fmt.Errorf("descending range limit 1 in tx = %v", got)
		}
		if n, _ := tx.SetLen("ryw"); n != 2 {
			return fmt.Errorf("len in tx = %d", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testRollback(t *testing.T, s meta.Store) {
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx meta.Tx) error {
		tx.Put("rb", []byte("x"))
		tx.SetAdd("rbset", "x")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	s.View(ctx, func(tx meta.Tx) error {
		if _, err := tx.Get("rb"); !errors.Is(err, meta.ErrNotFound) {
			t.Error("write of failed transaction visible")
		}
		if n, _ := tx.SetLen("rbset"); n != 0 {
			t.Error("set write of failed transaction visible")
		}
		return nil
	})
}

// testConcurrentCounter increments one key from many goroutines: a lost update shows as a
// final count below the number of increments.
func testConcurrentCounter(t *testing.T, s meta.Store) {
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := s.Update(ctx, func(tx meta.Tx) error {
					n := 0
					if v, err := tx.Get("counter"); err == nil {
						n, _ = strconv.Atoi(string(v))
					} else if !errors.Is(err, meta.ErrNotFound) {
						return err
					}
					return tx.Put("counter", []byte(strconv.Itoa(n+1)))
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s.View(ctx, func(tx meta.Tx) error {
		v, _ := tx.Get("counter")
		if string(v) != strconv.Itoa(workers*each) {
			t.Errorf("counter = %s, want %d", v, workers*each)
		}
		return nil
	})
}
