package catalog_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/testenv"
)

// TestLeasesOfAStoppedWriter: images left saving or staging by a process whose heartbeat
// stopped go back to queued with no data when another process's janitor passes; a live
// writer's, an image staged and at rest, and the janitor's own work are left alone.
func TestLeasesOfAStoppedWriter(t *testing.T) {
	redisURL := testenv.StartRedis(t)
	for _, backend := range []string{"", redisURL} {
		testLeases(t, newWorldOn(t, backend))
	}
}

func testLeases(t *testing.T, w *world) {
	a := w.cat // the writer
	b := catalog.New(w.store, &auth.Policy{Directory: w.id})
	member := w.as["member-a"]
	status := func(id string) catalog.Image {
		t.Helper()
		img, err := b.Get(ctx, member, id)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	// start runs op with a body that gives 100 bytes and then waits; it returns once the
	// image is in want, and a function that breaks the body off and waits for op.
	start := func(id string, want catalog.Status, op func(io.Reader) error) func() {
		t.Helper()
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() { done <- op(pr) }()
		pw.Write(make([]byte, 100))
		for i := 0; status(id).Status != want; i++ {
			if i == 500 {
				t.Fatalf("image %s never became %s", id, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return func() {
			pw.CloseWithError(errors.New("client went away"))
			if err := <-done; err == nil {
				t.Error("the interrupted write succeeded")
			}
		}
	}

	saving := w.create(t, "member-a", "saving", "raw")
	stopSaving := start(saving.ID, catalog.StatusSaving, func(r io.Reader) error {
		_, err := a.Upload(ctx, member, saving.ID, r, 1000)
		return err
	})
	staging := w.create(t, "member-a", "staging", "raw")
	stopStaging := start(staging.ID, catalog.StatusUploading, func(r io.Reader) error {
		_, err := a.Stage(ctx, member, staging.ID, r, 1000)
		return err
	})
	// An import fetching from a server that sends part of the image, then the rest on cue.
	release := make(chan struct{})
	web := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Length", "1000")
		rw.Write(make([]byte, 100))
		rw.(http.Flusher).Flush()
		<-release
		rw.Write(make([]byte, 900))
	}))
	defer web.Close()
	importing := w.create(t, "member-a", "importing", "raw")
	run, err := a.Import(ctx, member, importing.ID, catalog.ImportRequest{Method: catalog.ImportWebDownload,
		URI: web.URL + "/disk", Web: &catalog.WebDownloader{AllowedHosts: []string{"127.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	imported := make(chan error, 1)
	go func() { imported <- run(ctx) }()
	staged := w.create(t, "member-a", "staged", "raw")
	if _, err := a.Stage(ctx, member, staged.ID, bytes.NewReader(make([]byte, 512)), 512); err != nil {
		t.Fatal(err)
	}

	// The writer's own pass never takes its own work.
	if n, err := a.RecoverLeases(ctx, true); err != nil || n != 0 {
		t.Fatalf("the writer's own pass recovered %d (%v)", n, err)
	}
	// A recent heartbeat keeps the leases.
	if err := a.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	beat := a.Now()
	b.Now = func() time.Time { return beat.Add(30 * time.Second) }
	if n, err := b.RecoverLeases(ctx, false); err != nil || n != 0 {
		t.Fatalf("with a live writer: recovered %d (%v)", n, err)
	}
	if s := status(saving.ID).Status; s != catalog.StatusSaving {
		t.Fatalf("live upload is %s", s)
	}
	// Clocks need not agree: with b's an hour ahead, a heartbeat that keeps changing keeps
	// the leases.
	b.Now = func() time.Time { return beat.Add(time.Hour) }
	if err := a.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := b.RecoverLeases(ctx, false); err != nil || n != 0 {
		t.Fatalf("with a live writer whose clock is behind: recovered %d (%v)", n, err)
	}
	// The heartbeat stops: the writes are recovered, the staged image is not.
	b.Now = func() time.Time { return beat.Add(time.Hour + 5*time.Minute) }
	if n, err := b.RecoverLeases(ctx, false); err != nil || n != 3 {
		t.Fatalf("with a stopped writer: recovered %d (%v), want 3", n, err)
	}
	for _, id := range []string{saving.ID, staging.ID, importing.ID} {
		img := status(id)
		if img.Status != catalog.StatusQueued || img.Size != nil || img.Checksum != nil {
			t.Fatalf("recovered image: %+v", img)
		}
	}
	if s := status(staged.ID).Status; s != catalog.StatusUploading {
		t.Fatalf("staged image at rest became %s", s)
	}
	// The recovered import holds its lock no more, and its task failed.
	if lock := status(importing.ID).Properties[catalog.ImportLockProperty]; lock != "" {
		t.Fatalf("recovered import keeps its lock %s", lock)
	}
	if tasks, err := b.ImageTasks(ctx, member, importing.ID); err != nil || len(tasks) != 1 ||
		tasks[0].Status != catalog.TaskFailure || !strings.Contains(tasks[0].Message, "interrupted") {
		t.Fatalf("recovered import's task: %+v %v", tasks, err)
	}
	// A new upload begins; the old writer's late failure must not requeue it, and the new
	// one completes.
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		img, err := b.Upload(ctx, member, saving.ID, pr, 1000)
		if err == nil && img.Status != catalog.StatusActive {
			err = errors.New(string(img.Status))
		}
		done <- err
	}()
	for i := 0; status(saving.ID).Status != catalog.StatusSaving; i++ {
		if i == 500 {
			t.Fatal("the new upload never began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopSaving()
	stopStaging()
	if s := status(saving.ID).Status; s != catalog.StatusSaving {
		t.Fatalf("the new upload, after the stale writer failed: %s", s)
	}
	if s := status(staging.ID).Status; s != catalog.StatusQueued {
		t.Fatalf("the recovered stage, after the stale writer failed: %s", s)
	}
	// The stale import gets all its data after all: it must not publish over the recovery.
	close(release)
	if err := <-imported; err == nil {
		t.Error("the recovered import published")
	}
	if img := status(importing.ID); img.Status != catalog.StatusQueued || img.Size != nil {
		t.Fatalf("the recovered import, after its data came: %s", img.Status)
	}
	pw.Write(make([]byte, 1000))
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("new upload after recovery: %v", err)
	}
	if n, err := b.RecoverLeases(ctx, true); err != nil || n != 0 {
		t.Fatalf("second pass recovered %d (%v)", n, err)
	}
}
