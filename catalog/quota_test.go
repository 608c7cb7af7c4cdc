package catalog_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/testenv"
)

// gatedReader blocks its first Read until gate closes, counting the readers waiting: an
// upload that got past the catalog's checks and is streaming.
type gatedReader struct {
	r       io.Reader
	gate    chan struct{}
	waiting *atomic.Int32
	once    sync.Once
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.once.Do(func() { g.waiting.Add(1); <-g.gate })
	return g.r.Read(p)
}

// setLimits registers Glance's four limits as the project defaults.
func setLimits(t *testing.T, w *world, limits map[string]int64) {
	t.Helper()
	l := auth.NewLimits(w.store.Meta())
	var in []auth.RegisteredLimit
	for res, n := range limits {
		in = append(in, auth.RegisteredLimit{ServiceID: "glance-service", ResourceName: res, DefaultLimit: n})
	}
	if _, err := l.CreateRegistered(ctx, in); err != nil {
		t.Fatal(err)
	}
	w.cat.Limits = auth.ServiceLimits{Limits: l, ServiceID: "glance-service", Region: "RegionOne"}
}

func TestConcurrentUploadsStayWithinLimits(t *testing.T) {
	redisURL := testenv.StartRedis(t)
	for _, backend := range []string{"", redisURL} {
		testConcurrentUploads(t, newWorldOn(t, backend))
	}
}

// uploadAll starts n uploads of 1 MiB (size declared) at once, each held before its first
// byte until every upload has either been refused or is streaming; then it lets them finish.
// It returns how many streamed and the refusals.
func uploadAll(t *testing.T, w *world, n int, name string) (int, []error) {
	t.Helper()
	imgs := make([]catalog.Image, n)
	for i := range imgs {
		imgs[i] = w.create(t, "member-a", fmt.Sprintf("%s-%d", name, i), "raw")
	}
	gate, waiting := make(chan struct{}), &atomic.Int32{}
	var refused atomic.Int32
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, img := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := &gatedReader{r: bytes.NewReader(make([]byte, 1<<20)), gate: gate, waiting: waiting}
			_, err := w.cat.Upload(ctx, w.as["member-a"], img.ID, body, 1<<20)
			if err != nil && int(waiting.Load()) < n { // refused before streaming
				refused.Add(1)
			}
			errs[i] = err
		}()
	}
	for deadline := time.Now().Add(30 * time.Second); int(waiting.Load()+refused.Load()) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("uploads did not settle: %d streaming, %d refused", waiting.Load(), refused.Load())
		}
	}
	streaming := int(waiting.Load())
	u, err := w.cat.Usage(ctx, w.project["a"])
	if err != nil {
		t.Fatal(err)
	}
	if u[catalog.LimitCountUploading].Usage > u[catalog.LimitCountUploading].Limit {
		t.Fatalf("while streaming: %v", u)
	}
	close(gate)
	wg.Wait()
	var refusals []error
	for i, err := range errs {
		if err == nil {
			continue
		}
		refusals = append(refusals, err)
		got, gerr := w.cat.Get(ctx, w.as["member-a"], imgs[i].ID)
		if gerr != nil || got.Status != catalog.StatusQueued || got.Size != nil {
			t.Fatalf("refused image %s left %+v (%v)", imgs[i].ID, got, gerr)
		}
	}
	return streaming, refusals
}

func testConcurrentUploads(t *testing.T, w *world) {
	w.cat.Now = time.Now // the world's stepping clock is for one goroutine
	setLimits(t, w, map[string]int64{catalog.LimitCountUploading: 3, catalog.LimitSizeTotal: 4,
		catalog.LimitCountTotal: 100, catalog.LimitStageTotal: 100})

	// 16 at once against image_count_uploading = 3: exactly 3 stream, 13 are refused.
	streaming, refusals := uploadAll(t, w, 16, "count")
	if streaming != 3 || len(refusals) != 13 {
		t.Fatalf("count_uploading 3: %d streamed, %d refused (%v)", streaming, len(refusals), refusals)
	}
	for _, err := range refusals {
		if !errors.Is(err, catalog.ErrOverLimit) {
			t.Fatalf("refusal: %v", err)
		}
	}
	u, _ := w.cat.Usage(ctx, w.project["a"])
	if u[catalog.LimitSizeTotal].Usage != 3 || u[catalog.LimitCountUploading].Usage != 0 {
		t.Fatalf("after the first wave: %v", u)
	}

	// 8 more at usage 3 of image_size_total = 4: each declares 1 MiB and the reservations
	// are seen by the others, so one streams and the project ends at its limit, not over.
	streaming, refusals = uploadAll(t, w, 8, "size")
	if streaming != 1 || len(refusals) != 7 {
		t.Fatalf("size_total 4: %d streamed, %d refused (%v)", streaming, len(refusals), refusals)
	}
	u, _ = w.cat.Usage(ctx, w.project["a"])
	if u[catalog.LimitSizeTotal].Usage != 4 || u[catalog.LimitCountUploading].Usage != 0 || u[catalog.LimitCountTotal].Usage != 24 {
		t.Fatalf("after the second wave: %v", u)
	}
	// The text is Glance's (oslo.limit's ProjectOverLimit inside LimitExceeded).
	_, msg := catalog.KindOf(refusals[0])
	want := fmt.Sprintf("Project %s is over a limit for [Resource image_size_total is over limit of 4 due to current usage 4 and delta 1]", w.project["a"])
	if !bytes.Contains([]byte(msg), []byte(want)) {
		t.Fatalf("message %q, want %q", msg, want)
	}
}
