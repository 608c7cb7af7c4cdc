package meta_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage/meta"
)

// TestClusterLock: one holder at a time among many contenders, renewal by the holder,
// take-over once the lock expires, and Unlock only by the holder — on both backends.
func TestClusterLock(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			now := time.Unix(1_000_000, 0)
			var winners atomic.Int32
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := meta.TryLock(ctx, s, "chore", string(rune('a'+i)), time.Minute, now)
					if err != nil {
						t.Error(err)
					}
					if ok {
						winners.Add(1)
					}
				}()
			}
			wg.Wait()
			if winners.Load() != 1 {
				t.Fatalf("%d contenders took the lock at once, want 1", winners.Load())
			}
			holder, err := meta.LockHolder(ctx, s, "chore", now)
			if err != nil || holder == "" {
				t.Fatalf("holder %q, %v", holder, err)
			}
			other := "z"
			if ok, _ := meta.TryLock(ctx, s, "chore", holder, time.Minute, now.Add(30*time.Second)); !ok {
				t.Fatal("the holder could not renew its lock")
			}
			if ok, _ := meta.TryLock(ctx, s, "chore", other, time.Minute, now.Add(80*time.Second)); ok {
				t.Fatal("another node took a renewed lock before it expired")
			}
			if err := meta.Unlock(ctx, s, "chore", other); err != nil {
				t.Fatal(err)
			}
			if h, _ := meta.LockHolder(ctx, s, "chore", now.Add(80*time.Second)); h != holder {
				t.Fatalf("unlock by a non-holder released the lock: holder now %q", h)
			}
			if ok, _ := meta.TryLock(ctx, s, "chore", other, time.Minute, now.Add(91*time.Second)); !ok {
				t.Fatal("an expired lock was not taken over")
			}
			if err := meta.Unlock(ctx, s, "chore", other); err != nil {
				t.Fatal(err)
			}
			if h, _ := meta.LockHolder(ctx, s, "chore", now.Add(92*time.Second)); h != "" {
				t.Fatalf("after unlock the holder is %q", h)
			}
		})
	}
}

func TestParseSentinelURL(t *testing.T) {
	good := []struct {
		url, master, pw string
		addrs           []string
		db, wait        int
		timeout         time.Duration
	}{
		{"redis+sentinel://127.0.0.1:26379/mymaster", "mymaster", "", []string{"127.0.0.1:26379"}, 0, 0, time.Second},
		{"redis+sentinel://:s3cret@h1:26379,h2:26380/prim/3", "prim", "s3cret", []string{"h1:26379", "h2:26380"}, 3, 0, time.Second},
		{"redis+sentinel://[::1]:26379/m/", "m", "", []string{"[::1]:26379"}, 0, 0, time.Second},
		{"redis+sentinel://h1:26379/m/2?wait_replicas=1&wait_timeout=250ms", "m", "", []string{"h1:26379"}, 2, 1, 250 * time.Millisecond},
	}
	for _, g := range good {
		sc, err := meta.ParseSentinelURL(g.url)
		if err != nil {
			t.Errorf("%s: %v", g.url, err)
			continue
		}
		o := sc.Options
		if o.MasterName != g.master || o.Password != g.pw || strings.Join(o.SentinelAddrs, ",") != strings.Join(g.addrs, ",") || o.DB != g.db ||
			sc.WaitReplicas != g.wait || sc.WaitTimeout != g.timeout {
			t.Errorf("%s: master %q pw %q addrs %v db %d wait %d/%s", g.url, o.MasterName, o.Password, o.SentinelAddrs, o.DB, sc.WaitReplicas, sc.WaitTimeout)
		}
	}
	for _, bad := range []string{
		"redis+sentinel://h1:26379", "redis+sentinel://h1:26379/", "redis+sentinel://h1/m",
		"redis+sentinel://h1:0/m", "redis+sentinel://h1:26379/m/x", "redis+sentinel://h1:26379/m/1/2",
		"redis+sentinel:///m", "redis://h1:6379/m", "redis+sentinel://h1:26379/m?wait_replicas=x",
		"redis+sentinel://h1:26379/m?wait_timeout=0s", "redis+sentinel://h1:26379/m?master_name=x",
	} {
		if _, err := meta.ParseSentinelURL(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	if _, err := meta.OpenRedis(ctx, "redis+sentinel://h1/m", "x:"); err == nil || !strings.Contains(err.Error(), "host:port") {
		t.Errorf("OpenRedis with a bad sentinel URL: %v", err)
	}
}

// TestRedisUnavailable: a Redis that stops answering makes every call fail with
// ErrUnavailable (which the doors answer 503), and a restarted one is used again without a
// reopen.
func TestRedisUnavailable(t *testing.T) {
	r := testenv.StartRedisServer(t, testenv.RedisOptions{AOF: true})
	s, err := meta.OpenRedis(ctx, r.URL(), "u:")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func() error {
		return s.Update(ctx, func(tx meta.Tx) error { return tx.Put("k", []byte("v")) })
	}
	if err := put(); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, err := range []error{s.Ping(cctx), put(), s.View(cctx, func(tx meta.Tx) error { _, err := tx.Get("k"); return err })} {
		if !errors.Is(err, meta.ErrUnavailable) {
			t.Errorf("with redis down: %v, want ErrUnavailable", err)
		}
	}
	r.Start()
	var got []byte
	if err := s.View(ctx, func(tx meta.Tx) (err error) { got, err = tx.Get("k"); return err }); err != nil || string(got) != "v" {
		t.Fatalf("after restart (AOF): %q %v", got, err)
	}
}
