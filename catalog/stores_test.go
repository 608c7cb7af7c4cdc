package catalog_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// multiWorld is a world over three stores: fast (files, the default), cheap (S3 on a real
// versitygw) and spare (files).
type multiWorld struct {
	*world
	s3     *testenv.S3
	bucket string
}

func newMultiWorld(t *testing.T) *multiWorld { return newMultiWorldOn(t, "") }

// newMultiWorldOn is newMultiWorld on the embedded store, or on Redis when redisURL is set.
func newMultiWorldOn(t *testing.T, redisURL string) *multiWorld {
	t.Helper()
	dir := t.TempDir()
	fast, err := storage.OpenFiles(filepath.Join(dir, "fast"))
	if err != nil {
		t.Fatal(err)
	}
	spare, err := storage.OpenFiles(filepath.Join(dir, "spare"))
	if err != nil {
		t.Fatal(err)
	}
	s3 := testenv.StartS3(t)
	bucket := s3.Bucket("cheap")
	cheap, err := storage.OpenS3(s3.URL(bucket, "images"))
	if err != nil {
		t.Fatal(err)
	}
	var m meta.Store
	if redisURL != "" {
		m, err = meta.OpenRedis(ctx, redisURL, "t"+filepath.Base(dir)+":")
	} else {
		m, err = meta.OpenBolt(filepath.Join(dir, "meta.db"), time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	store, err := storage.NewStores(m, []storage.NamedStore{{Name: "fast", Store: fast}, {Name: "cheap", Store: cheap}, {Name: "spare", Store: spare}}, "fast")
	if err != nil {
		t.Fatal(err)
	}
	w := newWorldWith(t, store)
	w.cat.MultiStore = true
	return &multiWorld{world: w, s3: s3, bucket: bucket}
}

func (w *multiWorld) stores(t *testing.T, id string) []string {
	t.Helper()
	img, err := w.cat.Get(ctx, w.as["admin"], id)
	if err != nil {
		t.Fatal(err)
	}
	return w.cat.ImageStores(ctx, img)
}

func (w *multiWorld) blobStores(t *testing.T, id string) []string {
	t.Helper()
	img, _ := w.cat.Get(ctx, w.as["admin"], id)
	got, err := w.store.BlobStores(ctx, digest.Digest(img.DiskDigest))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

func (w *multiWorld) read(t *testing.T, id string) []byte {
	t.Helper()
	_, rd, _, err := w.cat.Open(ctx, w.as["member-a"], id)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantKind(t *testing.T, what string, err error, kind catalog.Kind, text string) {
	t.Helper()
	k, msg := catalog.KindOf(err)
	if k != kind || !strings.Contains(msg, text) {
		t.Fatalf("%s: %v (kind %d), want kind %d with %q", what, err, k, kind, text)
	}
}

func importNow(t *testing.T, w *multiWorld, who, id string, req catalog.ImportRequest) error {
	t.Helper()
	run, err := w.cat.Import(ctx, w.as[who], id, req)
	if err != nil {
		return err
	}
	return run(ctx)
}

func TestStoresInfo(t *testing.T) {
	w := newMultiWorld(t)
	var ids []string
	for _, s := range w.cat.Stores() {
		ids = append(ids, s.ID)
		if s.Default != (s.ID == "fast") {
			t.Fatalf("default flag of %s: %v", s.ID, s.Default)
		}
	}
	if !slices.Equal(ids, []string{"fast", "cheap", "spare"}) {
		t.Fatalf("stores: %v", ids)
	}
	if _, err := w.cat.StoresDetail(ctx, w.as["member-a"]); !errors.Is(err, catalog.ErrForbidden) {
		t.Fatalf("member asks for details: %v", err)
	}
	detail, err := w.cat.StoresDetail(ctx, w.as["admin"])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(detail)
	if !strings.Contains(string(b), `"Type":"s3"`) || !strings.Contains(string(b), `"bucket":"cheap"`) ||
		strings.Contains(string(b), w.s3.SecretKey) || strings.Contains(string(b), w.s3.AccessKey) {
		t.Fatalf("detail: %s", b)
	}
	// Without --store there is no multi-store API.
	single := newWorld(t)
	if single.cat.Stores() != nil || slices.Contains(single.cat.ImportMethods(), catalog.ImportCopyImage) {
		t.Fatal("a single-store server shows stores or copy-image")
	}
	if err := single.cat.DeleteFromStore(ctx, single.as["admin"], "default", "00000000-0000-0000-0000-000000000000"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("per-store delete without stores: %v", err)
	}
}

func TestUploadToStoreAndCopyImage(t *testing.T) {
	w := newMultiWorld(t)
	data := bytes.Repeat([]byte("multi-store "), 100000)
	img := w.create(t, "member-a", "placed", "raw")
	_, err := w.cat.UploadTo(ctx, w.as["member-a"], img.ID, "nowhere", bytes.NewReader(data), -1)
	wantKind(t, "upload to an unknown store", err, catalog.BadRequest, "Unknown scheme 'nowhere' found in URI")
	if got, _ := w.cat.Get(ctx, w.as["member-a"], img.ID); got.Status != catalog.StatusQueued {
		t.Fatalf("refused upload changed the image: %s", got.Status)
	}
	before := len(w.s3.Objects(w.bucket))
	if _, err := w.cat.UploadTo(ctx, w.as["member-a"], img.ID, "cheap", bytes.NewReader(data), -1); err != nil {
		t.Fatal(err)
	}
	if got := w.stores(t, img.ID); !slices.Equal(got, []string{"cheap"}) {
		t.Fatalf("stores after upload to cheap: %v", got)
	}
	if len(w.s3.Objects(w.bucket)) != before+1 {
		t.Fatalf("no object in the S3 bucket: %v", w.s3.Objects(w.bucket))
	}

	// copy-image: admins only (Glance's copy_image), active images only, not to a store
	// that holds the image already.
	_, err = w.cat.Import(ctx, w.as["member-a"], img.ID, catalog.ImportRequest{Method: catalog.ImportCopyImage, Stores: []string{"fast"}})
	if !errors.Is(err, catalog.ErrForbidden) {
		t.Fatalf("owner copies: %v", err)
	}
	_, err = w.cat.Import(ctx, w.as["member-b"], img.ID, catalog.ImportRequest{Method: catalog.ImportCopyImage, Stores: []string{"fast"}})
	if !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("another project copies a private image: %v", err)
	}
	_, err = w.cat.Import(ctx, w.as["admin"], img.ID, catalog.ImportRequest{Method: catalog.ImportCopyImage, Stores: []string{"cheap"}})
	wantKind(t, "copy to a store holding the image", err, catalog.BadRequest, "already present at store 'cheap'")
	_, err = w.cat.Import(ctx, w.as["admin"], img.ID, catalog.ImportRequest{Method: catalog.ImportCopyImage, Stores: []string{"nowhere"}})
	wantKind(t, "copy to an unknown store", err, catalog.Conflict, "Unknown scheme 'nowhere'")
	_, err = w.cat.Import(ctx, w.as["admin"], img.ID, catalog.ImportRequest{Method: catalog.ImportCopyImage, AllStores: true, Stores: []string{"fast"}})
	wantKind(t, "all_stores with stores", err, catalog.BadRequest, "All_stores parameter can't be used")
	queued := w.create(t, "member-a", "empty", "raw")
	_, err = w.cat.Import(ctx, w.as["admin"], queued.ID, catalog.ImportRequest{Method: catalog.ImportCopyImage, Stores: []string{"fast"}})
	wantKind(t, "copy of a queued image", err, catalog.Conflict, "Only images with status active")

	run, err := w.cat.Import(ctx, w.as["admin"], img.ID, catalog.ImportRequest{Method: catalog.ImportCopyImage, Stores: []string{"fast"}})
	if err != nil {
		t.Fatal(err)
	}
	mid, _ := w.cat.Get(ctx, w.as["admin"], img.ID)
	if mid.Status != catalog.StatusActive || mid.Properties[catalog.ImportingToStoresProperty] != "fast" || mid.Properties[catalog.ImportLockProperty] == "" {
		t.Fatalf("while copying: %s %v", mid.Status, mid.Properties)
	}
	_, err = w.cat.Import(ctx, w.as["admin"], img.ID, catalog.ImportRequest{Method: catalog.ImportCopyImage, Stores: []string{"spare"}})
	wantKind(t, "second copy while one runs", err, catalog.Conflict, "already being imported")
	if err := run(ctx); err != nil {
		t.Fatal(err)
	}
	done, _ := w.cat.Get(ctx, w.as["admin"], img.ID)
	if got := w.cat.ImageStores(ctx, done); !slices.Equal(got, []string{"cheap", "fast"}) ||
		done.Properties[catalog.ImportingToStoresProperty] != "" || done.Properties[catalog.FailedImportProperty] != "" {
		t.Fatalf("after the copy: stores %v, properties %v", got, done.Properties)
	}
	if _, held := done.Properties[catalog.ImportLockProperty]; held {
		t.Fatal("the copy kept its lock")
	}

	// The first store is down: reads fall back to the copy.
	w.s3.Stop()
	if !bytes.Equal(w.read(t, img.ID), data) {
		t.Fatal("read with S3 down differs")
	}
	// A copy to all stores skips those holding the image; with all_stores_must_succeed
	// false a store that fails is recorded and the copy goes on.
	if err := importNow(t, w, "admin", img.ID, catalog.ImportRequest{Method: catalog.ImportCopyImage, AllStores: true}); err != nil {
		t.Fatal(err)
	}
	if got := w.stores(t, img.ID); !slices.Equal(got, []string{"cheap", "fast", "spare"}) {
		t.Fatalf("after a copy to all stores: %v", got)
	}
	w.s3.Restart()
}

func TestDeleteFromStore(t *testing.T) {
	redisURL := testenv.StartRedis(t)
	for _, backend := range []string{"", redisURL} {
		testDeleteFromStore(t, newMultiWorldOn(t, backend))
	}
}

func testDeleteFromStore(t *testing.T, w *multiWorld) {
	data := bytes.Repeat([]byte("shared bytes "), 50000)
	one := w.create(t, "member-a", "one", "raw")
	two := w.create(t, "member-a", "two", "raw")
	for _, img := range []catalog.Image{one, two} {
		if _, err := w.cat.UploadTo(ctx, w.as["member-a"], img.ID, "", bytes.NewReader(data), -1); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.stores(t, one.ID); !slices.Equal(got, []string{"fast"}) {
		t.Fatalf("default store: %v", got)
	}
	err := w.cat.DeleteFromStore(ctx, w.as["admin"], "fast", one.ID)
	wantKind(t, "delete from the last store", err, catalog.Conflict, "only store containing it")
	for _, img := range []catalog.Image{one, two} {
		if err := importNow(t, w, "admin", img.ID, catalog.ImportRequest{Method: catalog.ImportCopyImage, Stores: []string{"cheap"}}); err != nil {
			t.Fatal(err)
		}
	}
	objects := len(w.s3.Objects(w.bucket))
	err = w.cat.DeleteFromStore(ctx, w.as["admin"], "nowhere", one.ID)
	wantKind(t, "unknown store", err, catalog.Conflict, "The selected store nowhere is not available on this node.")
	err = w.cat.DeleteFromStore(ctx, w.as["admin"], "spare", one.ID)
	wantKind(t, "store without the image", err, catalog.NotFound, "is not stored in store spare")
	err = w.cat.DeleteFromStore(ctx, w.as["admin"], "cheap", "00000000-0000-0000-0000-000000000000")
	wantKind(t, "unknown image", err, catalog.NotFound, "Failed to find image")
	if err := w.cat.DeleteFromStore(ctx, w.as["member-a"], "cheap", one.ID); !errors.Is(err, catalog.ErrForbidden) {
		t.Fatalf("owner deletes a location: %v", err)
	}
	if err := w.cat.DeleteFromStore(ctx, w.as["member-b"], "cheap", one.ID); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("another project deletes a location: %v", err)
	}
	if got := w.stores(t, one.ID); !slices.Equal(got, []string{"cheap", "fast"}) {
		t.Fatalf("refusals changed the stores: %v", got)
	}

	// Both images hold the blob in cheap: it stays there until neither does.
	if err := w.cat.DeleteFromStore(ctx, w.as["admin"], "cheap", one.ID); err != nil {
		t.Fatal(err)
	}
	if got := w.stores(t, one.ID); !slices.Equal(got, []string{"fast"}) {
		t.Fatalf("after delete from cheap: %v", got)
	}
	if got := w.blobStores(t, one.ID); !slices.Equal(got, []string{"cheap", "fast"}) || len(w.s3.Objects(w.bucket)) != objects {
		t.Fatalf("a copy another image needs went: %v", got)
	}
	if err := w.cat.DeleteFromStore(ctx, w.as["admin"], "cheap", two.ID); err != nil {
		t.Fatal(err)
	}
	if got := w.blobStores(t, two.ID); !slices.Equal(got, []string{"fast"}) || len(w.s3.Objects(w.bucket)) != objects-1 {
		t.Fatalf("the last copy in cheap stayed: %v, %d objects", got, len(w.s3.Objects(w.bucket)))
	}
	if !bytes.Equal(w.read(t, two.ID), data) {
		t.Fatal("data after per-store deletes differs")
	}
}

func TestImportToStores(t *testing.T) {
	w := newMultiWorld(t)
	data := bytes.Repeat([]byte("import to stores "), 40000)
	// Each image's own bytes: blobs are shared by digest, and a copy already in a store
	// would make an import there succeed without the store.
	stage := func(name, store string) catalog.Image {
		img := w.create(t, "member-a", name, "raw")
		if _, err := w.cat.StageTo(ctx, w.as["member-a"], img.ID, store, bytes.NewReader(append([]byte(name), data...)), -1); err != nil {
			t.Fatal(err)
		}
		return img
	}
	bad := w.create(t, "member-a", "bad", "raw")
	_, err := w.cat.StageTo(ctx, w.as["member-a"], bad.ID, "nowhere", bytes.NewReader(data), -1)
	wantKind(t, "stage to an unknown store", err, catalog.BadRequest, "Unknown scheme 'nowhere'")

	img := stage("specific", "")
	_, err = w.cat.Import(ctx, w.as["member-a"], img.ID, catalog.ImportRequest{Method: catalog.ImportGlanceDirect, Stores: []string{"cheap", "nowhere"}})
	wantKind(t, "import to an unknown store", err, catalog.Conflict, "Unknown scheme 'nowhere'")
	_, err = w.cat.Import(ctx, w.as["member-a"], img.ID, catalog.ImportRequest{Method: catalog.ImportGlanceDirect, Stores: []string{"cheap"}, HeaderStore: "spare"})
	wantKind(t, "stores and the header", err, catalog.BadRequest, "can't be both specified")
	_, err = w.cat.Import(ctx, w.as["member-a"], img.ID, catalog.ImportRequest{Method: catalog.ImportGlanceDirect, Stores: []string{}})
	wantKind(t, "empty stores", err, catalog.BadRequest, "at least one store")
	if got, _ := w.cat.Get(ctx, w.as["member-a"], img.ID); got.Status != catalog.StatusUploading {
		t.Fatalf("refused imports changed the image: %s", got.Status)
	}
	run, err := w.cat.Import(ctx, w.as["member-a"], img.ID, catalog.ImportRequest{Method: catalog.ImportGlanceDirect, Stores: []string{"cheap", "spare"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := w.cat.Get(ctx, w.as["member-a"], img.ID); got.Properties[catalog.ImportingToStoresProperty] != "cheap,spare" {
		t.Fatalf("importing to stores: %v", got.Properties)
	}
	if err := run(ctx); err != nil {
		t.Fatal(err)
	}
	// The staging copy in the default store went: the import did not ask for it.
	if got := w.stores(t, img.ID); !slices.Equal(got, []string{"cheap", "spare"}) {
		t.Fatalf("stores: %v", got)
	}
	if got := w.blobStores(t, img.ID); !slices.Equal(got, []string{"cheap", "spare"}) {
		t.Fatalf("blob copies: %v", got)
	}
	if !bytes.Equal(w.read(t, img.ID), append([]byte("specific"), data...)) {
		t.Fatal("imported data differs")
	}

	// S3 down: with all_stores_must_succeed false the image goes active in the others and
	// the failure is recorded; with it true the import fails and the image is queued.
	w.s3.Stop()
	lenient := stage("lenient", "spare")
	if err := importNow(t, w, "member-a", lenient.ID, catalog.ImportRequest{Method: catalog.ImportGlanceDirect, AllStores: true,
		AllStoresMustSucceed: new(false)}); err != nil {
		t.Fatal(err)
	}
	got, _ := w.cat.Get(ctx, w.as["member-a"], lenient.ID)
	if got.Status != catalog.StatusActive || got.Properties[catalog.FailedImportProperty] != "cheap" ||
		got.Properties[catalog.ImportingToStoresProperty] != "" || !slices.Equal(w.cat.ImageStores(ctx, got), []string{"fast", "spare"}) {
		t.Fatalf("lenient import: %s %v %v", got.Status, got.Properties, w.cat.ImageStores(ctx, got))
	}
	strict := stage("strict", "")
	if err := importNow(t, w, "member-a", strict.ID, catalog.ImportRequest{Method: catalog.ImportGlanceDirect, AllStores: true}); err == nil {
		t.Fatal("a strict import with a store down succeeded")
	}
	got, _ = w.cat.Get(ctx, w.as["member-a"], strict.ID)
	if got.Status != catalog.StatusQueued || got.Properties[catalog.FailedImportProperty] == "" || got.Properties[catalog.ImportingToStoresProperty] != "" {
		t.Fatalf("strict import: %s %v", got.Status, got.Properties)
	}
	w.s3.Restart()
}

// TestMultiStoreQuota: Glance counts an image once per store in image_size_total, and a
// copy in progress in image_stage_total and image_count_uploading.
func TestMultiStoreQuota(t *testing.T) {
	w := newMultiWorld(t)
	setLimits(t, w.world, map[string]int64{catalog.LimitSizeTotal: 100, catalog.LimitStageTotal: 100,
		catalog.LimitCountTotal: 10, catalog.LimitCountUploading: 10})
	img := w.create(t, "member-a", "counted", "raw")
	if _, err := w.cat.UploadTo(ctx, w.as["member-a"], img.ID, "", bytes.NewReader(make([]byte, 3<<20)), -1); err != nil {
		t.Fatal(err)
	}
	usage := func() (int64, int64, int64) {
		u, err := w.cat.Usage(ctx, w.project["a"])
		if err != nil {
			t.Fatal(err)
		}
		return u[catalog.LimitSizeTotal].Usage, u[catalog.LimitStageTotal].Usage, u[catalog.LimitCountUploading].Usage
	}
	if size, stage, up := usage(); size != 3 || stage != 0 || up != 0 {
		t.Fatalf("one store: size %d stage %d uploading %d", size, stage, up)
	}
	run, err := w.cat.Import(ctx, w.as["admin"], img.ID, catalog.ImportRequest{Method: catalog.ImportCopyImage, Stores: []string{"cheap", "spare"}})
	if err != nil {
		t.Fatal(err)
	}
	if size, stage, up := usage(); size != 3 || stage != 3 || up != 1 {
		t.Fatalf("while copying: size %d stage %d uploading %d", size, stage, up)
	}
	if err := run(ctx); err != nil {
		t.Fatal(err)
	}
	if size, stage, up := usage(); size != 9 || stage != 0 || up != 0 {
		t.Fatalf("three stores: size %d stage %d uploading %d", size, stage, up)
	}
	if err := w.cat.DeleteFromStore(ctx, w.as["admin"], "spare", img.ID); err != nil {
		t.Fatal(err)
	}
	if size, _, _ := usage(); size != 6 {
		t.Fatalf("two stores: size %d", size)
	}
}

// TestCopyOfStoppedServerEnds: a copy-image whose process stopped is ended by the next
// lease pass: the image stays active with its data, the stores left count as failed, the
// lock goes, and a new copy can start.
func TestCopyOfStoppedServerEnds(t *testing.T) {
	w := newMultiWorld(t)
	img := w.create(t, "member-a", "copied", "raw")
	if _, err := w.cat.UploadTo(ctx, w.as["member-a"], img.ID, "", bytes.NewReader(make([]byte, 1<<20)), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cat.Import(ctx, w.as["admin"], img.ID, catalog.ImportRequest{Method: catalog.ImportCopyImage, Stores: []string{"cheap"}}); err != nil {
		t.Fatal(err) // its work never runs: the process "stopped"
	}
	other := catalog.New(w.store, &auth.Policy{Directory: w.id})
	if n, err := other.RecoverLeases(ctx, true); err != nil || n != 1 {
		t.Fatalf("recovered %d (%v), want 1", n, err)
	}
	got, _ := w.cat.Get(ctx, w.as["admin"], img.ID)
	if got.Status != catalog.StatusActive || got.Properties[catalog.ImportingToStoresProperty] != "" ||
		got.Properties[catalog.FailedImportProperty] != "cheap" || got.Properties[catalog.ImportLockProperty] != "" ||
		!slices.Equal(w.cat.ImageStores(ctx, got), []string{"fast"}) {
		t.Fatalf("after recovery: %s %v %v", got.Status, got.Properties, w.cat.ImageStores(ctx, got))
	}
	if err := importNow(t, w, "admin", img.ID, catalog.ImportRequest{Method: catalog.ImportCopyImage, Stores: []string{"cheap"}}); err != nil {
		t.Fatal(err)
	}
	if got := w.stores(t, img.ID); !slices.Equal(got, []string{"cheap", "fast"}) {
		t.Fatalf("copy after recovery: %v", got)
	}
}
