package catalog_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
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

// TestStageAndImportQuotas: image_stage_total and image_count_uploading at stage and upload
// (refusals leave the image queued), image_size_total when a glance-direct import runs
// (after the 202: the task fails with Glance's text, the image goes back to queued).
func TestStageAndImportQuotas(t *testing.T) {
	w := newWorld(t)
	setLimits(t, w, map[string]int64{catalog.LimitStageTotal: 1, catalog.LimitCountUploading: 1,
		catalog.LimitSizeTotal: 1, catalog.LimitCountTotal: 100})
	me := w.as["member-a"]
	mib := func() *bytes.Reader { return bytes.NewReader(make([]byte, 1<<20)) }
	a, b, c := w.create(t, "member-a", "a", "raw"), w.create(t, "member-a", "b", "raw"), w.create(t, "member-a", "c", "raw")
	if _, err := w.cat.Stage(ctx, me, a.ID, mib(), 1<<20); err != nil {
		t.Fatalf("stage within the limits: %v", err)
	}
	_, err := w.cat.Stage(ctx, me, b.ID, mib(), 1<<20)
	if _, msg := catalog.KindOf(err); !errors.Is(err, catalog.ErrOverLimit) ||
		!strings.Contains(msg, "Resource image_stage_total is over limit of 1 due to current usage 1 and delta 1, "+
			"Resource image_count_uploading is over limit of 1 due to current usage 2 and delta 0]") {
		t.Fatalf("second stage: %v", err)
	}
	_, err = w.cat.Upload(ctx, me, c.ID, mib(), 1<<20)
	if _, msg := catalog.KindOf(err); !strings.Contains(msg, "[Resource image_count_uploading is over limit of 1 due to current usage 2 and delta 0]") {
		t.Fatalf("upload while one is staged: %v", err)
	}
	for _, img := range []catalog.Image{b, c} {
		if got, _ := w.cat.Get(ctx, me, img.ID); got.Status != catalog.StatusQueued || got.Size != nil {
			t.Fatalf("refused image left %+v", got)
		}
	}
	run, err := w.cat.Import(ctx, me, a.ID, catalog.ImportRequest{Method: catalog.ImportGlanceDirect})
	if err != nil {
		t.Fatal(err)
	}
	if err := run(ctx); err != nil {
		t.Fatalf("import within the limits: %v", err)
	}
	u, _ := w.cat.Usage(ctx, w.project["a"])
	if u[catalog.LimitSizeTotal].Usage != 1 || u[catalog.LimitStageTotal].Usage != 0 || u[catalog.LimitCountUploading].Usage != 0 {
		t.Fatalf("usage after the import: %v", u)
	}
	// b stages now (nothing else is staged); its import is accepted (usage 1 is not over
	// 1) and then fails in the flow: 1 + 1 > 1.
	if _, err := w.cat.Stage(ctx, me, b.ID, mib(), 1<<20); err != nil {
		t.Fatalf("stage b: %v", err)
	}
	run, err = w.cat.Import(ctx, me, b.ID, catalog.ImportRequest{Method: catalog.ImportGlanceDirect})
	if err != nil {
		t.Fatalf("import b is accepted: %v", err)
	}
	if err := run(ctx); !errors.Is(err, catalog.ErrOverLimit) {
		t.Fatalf("import b: %v", err)
	}
	tasks, err := w.cat.ImageTasks(ctx, me, b.ID)
	if err != nil || len(tasks) != 1 || tasks[0].Status != catalog.TaskFailure ||
		!strings.Contains(tasks[0].Message, "image_size_total is over limit of 1 due to current usage 1 and delta 1") {
		t.Fatalf("b's task: %+v %v", tasks, err)
	}
	if got, _ := w.cat.Get(ctx, me, b.ID); got.Status != catalog.StatusQueued || got.Properties[catalog.ImportLockProperty] != "" {
		t.Fatalf("b after the failed import: %+v", got)
	}
	// Now over: any import is refused at once (Glance's synchronous check, delta 0), and
	// creates no task.
	if _, err := w.cat.Upload(ctx, me, c.ID, mib(), -1); err != nil { // unknown size: soft, allowed at usage 1 of 1
		t.Fatal(err)
	}
	if _, err := w.cat.Stage(ctx, me, b.ID, mib(), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cat.Import(ctx, me, b.ID, catalog.ImportRequest{Method: catalog.ImportGlanceDirect}); !errors.Is(err, catalog.ErrOverLimit) {
		t.Fatalf("import while over: %v", err)
	}
	if tasks, _ := w.cat.ImageTasks(ctx, me, b.ID); len(tasks) != 1 {
		t.Fatalf("a refused import made a task: %+v", tasks)
	}
}
