package storage_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage"
)

// TestUploadLimitPerProject: a project holds at most UploadLimit open sessions, counted
// across its repositories, even when starts race; other projects are not affected; a
// finished, cancelled or expired session makes room.
func TestUploadLimitPerProject(t *testing.T) {
	forBackends(t, func(t *testing.T, e *env) {
		e.s.UploadLimit = 3
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			repo := "proj/a"
			if i%2 == 1 {
				repo = "proj/b/c"
			}
			wg.Go(func() { _, errs[i] = e.s.StartUpload(ctx, repo, "") })
		}
		wg.Wait()
		ok, refused := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, storage.ErrTooManyUploads):
				refused++
			default:
				t.Fatal(err)
			}
		}
		if ok != 3 || refused != 5 {
			t.Fatalf("%d started, %d refused; want 3 and 5", ok, refused)
		}
		if _, err := e.s.StartUpload(ctx, "other/x", ""); err != nil {
			t.Fatalf("another project: %v", err)
		}
		if _, err := e.s.StartUpload(ctx, "proj", ""); !errors.Is(err, storage.ErrTooManyUploads) {
			t.Fatalf("the project's own repository: %v, want ErrTooManyUploads", err)
		}
	})
}

// TestUploadLimitFreedByEnds: committing, cancelling and expiring a session each make room
// for a new one.
func TestUploadLimitFreedByEnds(t *testing.T) {
	forBackends(t, func(t *testing.T, e *env) {
		now := time.Unix(1_800_000_000, 0)
		e.s.Now = func() time.Time { return now }
		e.s.UploadLimit = 2
		a := mustStart(t, e, "p/r")
		b := mustStart(t, e, "p/r")
		full := func() {
			t.Helper()
			if _, err := e.s.StartUpload(ctx, "p/r", ""); !errors.Is(err, storage.ErrTooManyUploads) {
				t.Fatalf("full project: %v, want ErrTooManyUploads", err)
			}
		}
		full()
		content := []byte("hello")
		if _, err := e.s.CommitUpload(ctx, "p/r", a.ID, digest.FromBytes(content), 0, bytes.NewReader(content), -1); err != nil {
			t.Fatal(err)
		}
		c := mustStart(t, e, "p/r")
		full()
		if err := e.s.CancelUpload(ctx, "p/r", b.ID); err != nil {
			t.Fatal(err)
		}
		mustStart(t, e, "p/r")
		full()
		now = now.Add(2 * time.Hour)
		ids, err := e.s.ExpireUploads(ctx, time.Hour)
		if err != nil || len(ids) != 2 {
			t.Fatalf("expired %v, %v; want both open sessions", ids, err)
		}
		if _, err := e.s.GetUpload(ctx, "p/r", c.ID); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Fatalf("expired session: %v, want ErrUploadUnknown", err)
		}
		mustStart(t, e, "p/r")
	})
}

func mustStart(t *testing.T, e *env, repo string) storage.Upload {
	t.Helper()
	u, err := e.s.StartUpload(ctx, repo, "")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestExpireIdleUploads: sessions untouched for maxAge go, with their data; one that took a
// chunk since stays; the janitor does it unattended.
func TestExpireIdleUploads(t *testing.T) {
	forBackends(t, func(t *testing.T, e *env) {
		var mu sync.Mutex
		now := time.Unix(1_800_000_000, 0)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
		e.s.Now = clock
		idle := mustStart(t, e, "p/idle")
		busy := mustStart(t, e, "p/busy")
		if _, err := e.s.AppendUpload(ctx, "p/idle", idle.ID, 0, bytes.NewReader([]byte("partial")), -1); err != nil {
			t.Fatal(err)
		}
		advance(50 * time.Minute)
		if _, err := e.s.AppendUpload(ctx, "p/busy", busy.ID, 0, bytes.NewReader([]byte("chunk")), -1); err != nil {
			t.Fatal(err)
		}
		advance(20 * time.Minute) // idle: 70 min untouched; busy: 20 min
		ids, err := e.s.ExpireUploads(ctx, time.Hour)
		if err != nil || len(ids) != 1 || ids[0] != idle.ID {
			t.Fatalf("expired %v, %v; want only %s", ids, err, idle.ID)
		}
		if _, err := e.s.AppendUpload(ctx, "p/idle", idle.ID, -1, bytes.NewReader([]byte("more")), -1); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Fatalf("append to an expired session: %v, want ErrUploadUnknown", err)
		}
		if _, err := os.Stat(e.files.UploadPath(idle.ID)); !os.IsNotExist(err) {
			t.Fatalf("expired session's data: %v, want removed", err)
		}
		if _, err := e.s.GetUpload(ctx, "p/busy", busy.ID); err != nil {
			t.Fatalf("recently touched session: %v", err)
		}

		// The janitor, on its own, removes the other once it too is idle long enough.
		advance(2 * time.Hour)
		jctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); e.s.RunUploadJanitor(jctx, time.Second, slog.New(slog.DiscardHandler)) }()
		defer func() { stop(); <-done }()
		for {
			if _, err := e.s.GetUpload(ctx, "p/busy", busy.ID); errors.Is(err, storage.ErrUploadUnknown) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
