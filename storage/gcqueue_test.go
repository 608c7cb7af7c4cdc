package storage_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage"
)

// TestGCReviewQueue: blobs enter the review queue when committed unheld and when their last
// manifest goes; a review removes only due, still unheld blobs, a dry run removes nothing,
// and a blob touched again after it was queued waits for its newer entry.
func TestGCReviewQueue(t *testing.T) {
	forBackends(t, func(t *testing.T, e *env) {
		now := time.Now()
		e.s.Now = func() time.Time { return now }
		e.s.GCGrace = time.Hour
		kept := push(t, e.s, "q/repo", []byte("held layer"))
		loose := push(t, e.s, "q/repo", []byte("loose layer"))
		md, err := putManifest(e.s, "q/repo", "v1", kept)
		if err != nil {
			t.Fatal(err)
		}
		queued := func() int64 {
			n, err := e.s.GCQueueLength(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := queued(); n < 2 {
			t.Fatalf("queue holds %d entries after two unheld commits, want at least 2", n)
		}
		rep, err := e.s.ReviewGarbage(ctx, false)
		if err != nil || len(rep.Blobs) != 0 || rep.BlobsChecked != 0 {
			t.Fatalf("review before anything is due: %+v %v", rep, err)
		}
		now = now.Add(90 * time.Minute)
		rep, err = e.s.ReviewGarbage(ctx, true)
		if err != nil || !slices.Equal(rep.Blobs, []digest.Digest{loose}) || rep.WouldFree == 0 {
			t.Fatalf("dry run: %+v %v", rep, err)
		}
		if _, err := e.s.StatBlob(ctx, "q/repo", loose); err != nil {
			t.Fatal("dry run removed a blob")
		}
		rep, err = e.s.ReviewGarbage(ctx, false)
		if err != nil || !slices.Equal(rep.Blobs, []digest.Digest{loose}) {
			t.Fatalf("review: %+v %v", rep, err)
		}
		if _, err := e.s.StatBlob(ctx, "q/repo", loose); !errors.Is(err, storage.ErrBlobUnknown) {
			t.Fatalf("reviewed loose blob still there: %v", err)
		}
		if _, err := e.s.StatBlob(ctx, "q/repo", kept); err != nil {
			t.Fatalf("held blob removed: %v", err)
		}
		if n := queued(); n != 0 {
			t.Fatalf("%d entries left after every due one was reviewed", n)
		}
		// The manifest goes: its blobs are queued, and go one grace period later, not before.
		if err := e.s.DeleteManifest(ctx, "q/repo", md); err != nil {
			t.Fatal(err)
		}
		if n := queued(); n != 2 {
			t.Fatalf("queue after the manifest's delete: %d, want 2 (the layer and the manifest)", n)
		}
		now = now.Add(30 * time.Minute)
		// A re-push of the layer touches it: it gets a newer entry and survives the old one.
		push(t, e.s, "q/repo", []byte("held layer"))
		now = now.Add(40 * time.Minute)
		rep, err = e.s.ReviewGarbage(ctx, false)
		if err != nil || !slices.Equal(rep.Blobs, []digest.Digest{md}) {
			t.Fatalf("review after delete: %+v %v, want only the manifest %s", rep, err, md)
		}
		now = now.Add(time.Hour)
		rep, err = e.s.ReviewGarbage(ctx, false)
		if err != nil || !slices.Equal(rep.Blobs, []digest.Digest{kept}) {
			t.Fatalf("review of the re-pushed layer: %+v %v", rep, err)
		}

		// A push that finds a loose blob present (HEAD) and names it later holds it: the
		// HEAD past half its grace renews its lease.
		found := push(t, e.s, "q/repo", []byte("found by HEAD"))
		now = now.Add(45 * time.Minute)
		if err := e.s.LeaseBlob(ctx, "q/repo", found); err != nil {
			t.Fatal(err)
		}
		now = now.Add(30 * time.Minute)
		if rep, err = e.s.ReviewGarbage(ctx, false); err != nil || len(rep.Blobs) != 0 {
			t.Fatalf("a blob leased by a HEAD was collected: %+v %v", rep, err)
		}
		if _, err := putManifest(e.s, "q/repo", "v2", found); err != nil {
			t.Fatalf("manifest naming the leased blob: %v", err)
		}
		now = now.Add(2 * time.Hour)
		if rep, err = e.s.ReviewGarbage(ctx, false); err != nil || len(rep.Blobs) != 0 {
			t.Fatalf("a referenced blob was collected: %+v %v", rep, err)
		}
	})
}
