package catalog_test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/xloud/xloud-image/catalog"
)

func TestStageAndGlanceDirectImport(t *testing.T) {
	qcow := qemuImage(t, "-f", "qcow2", "32M")
	w := newWorld(t)
	w.cat.HashAlgo = "sha512"
	img := w.create(t, "member-a", "staged", "qcow2")
	if _, err := w.cat.Import(ctx, w.as["member-a"], img.ID, catalog.ImportRequest{Method: catalog.ImportGlanceDirect}); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("import before staging: %v", err)
	}
	if _, err := w.cat.Stage(ctx, w.as["reader-a"], img.ID, bytes.NewReader(qcow), -1); !errors.Is(err, catalog.ErrForbidden) {
		t.Fatalf("reader stage: %v", err)
	}
	staged, err := w.cat.Stage(ctx, w.as["member-a"], img.ID, bytes.NewReader(qcow), -1)
	if err != nil {
		t.Fatal(err)
	}
	sum, sha := md5.Sum(qcow), sha512.Sum512(qcow)
	// As in Glance, staging records the size; the hashes show once the import is done.
	if staged.Status != catalog.StatusUploading || *staged.Size != int64(len(qcow)) || staged.Checksum != nil ||
		staged.HashAlgo != nil || staged.HashValue != nil || staged.Reference != "" {
		t.Fatalf("staged: %+v", staged)
	}
	if _, err := w.store.ResolveTag(ctx, staged.Repository, img.ID); err == nil {
		t.Fatal("staged data is published")
	}
	run, err := w.cat.Import(ctx, w.as["member-a"], img.ID, catalog.ImportRequest{Method: catalog.ImportGlanceDirect})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := w.cat.Get(ctx, w.as["member-a"], img.ID); got.Status != catalog.StatusImporting {
		t.Fatalf("while importing: %s", got.Status)
	}
	if _, err := w.cat.Import(ctx, w.as["member-a"], img.ID, catalog.ImportRequest{Method: catalog.ImportGlanceDirect}); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("second import: %v", err)
	}
	if err := run(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := w.cat.Get(ctx, w.as["member-a"], img.ID)
	if got.Status != catalog.StatusActive || *got.Checksum != hex.EncodeToString(sum[:]) || *got.HashAlgo != "sha512" ||
		*got.HashValue != hex.EncodeToString(sha[:]) || got.VirtualSize == nil || *got.VirtualSize != 32<<20 {
		t.Fatalf("imported: %+v", got)
	}
	if d, err := w.store.ResolveTag(ctx, got.Repository, img.ID); err != nil || d.String() != got.Reference {
		t.Fatalf("imported image's tag: %v %v", d, err)
	}
	_, rd, _, err := w.cat.Open(ctx, w.as["member-a"], img.ID)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := io.ReadAll(rd)
	rd.Close()
	if !bytes.Equal(back, qcow) {
		t.Fatal("imported data differs")
	}
}

func TestImportFailuresRequeue(t *testing.T) {
	w := newWorld(t)
	raw := make([]byte, 1<<20)
	img := w.create(t, "member-a", "liar", "qcow2")
	if _, err := w.cat.Stage(ctx, w.as["member-a"], img.ID, bytes.NewReader(raw), 100); !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("stage over its size: %v", err)
	}
	if got, _ := w.cat.Get(ctx, w.as["member-a"], img.ID); got.Status != catalog.StatusQueued || got.Size != nil {
		t.Fatalf("after a failed stage: %+v", got)
	}
	if _, err := w.cat.Stage(ctx, w.as["member-a"], img.ID, bytes.NewReader(raw), int64(len(raw))); err != nil {
		t.Fatal(err)
	}
	run, err := w.cat.Import(ctx, w.as["member-a"], img.ID, catalog.ImportRequest{Method: catalog.ImportGlanceDirect})
	if err != nil {
		t.Fatal(err)
	}
	if err := run(ctx); !errors.Is(err, catalog.ErrBadData) {
		t.Fatalf("import of raw bytes as qcow2: %v", err)
	}
	got, _ := w.cat.Get(ctx, w.as["member-a"], img.ID)
	if got.Status != catalog.StatusQueued || got.Size != nil || got.Checksum != nil || got.DiskDigest != "" || got.Repository != "" {
		t.Fatalf("after a failed import: %+v", got)
	}
	// A web-download that is refused by the server leaves it queued too.
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	run, err = w.cat.Import(ctx, w.as["member-a"], img.ID, catalog.ImportRequest{Method: catalog.ImportWebDownload,
		URI: srv.URL + "/x", Web: &catalog.WebDownloader{AllowedHosts: []string{"127.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := run(ctx); err == nil {
		t.Fatal("web-download of a 404 succeeded")
	}
	if got, _ := w.cat.Get(ctx, w.as["member-a"], img.ID); got.Status != catalog.StatusQueued {
		t.Fatalf("after a failed web-download: %s", got.Status)
	}
	if _, err := w.cat.Import(ctx, w.as["member-a"], img.ID, catalog.ImportRequest{Method: "copy-image"}); !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("copy-image: %v", err)
	}
}

func TestWebDownloadFilter(t *testing.T) {
	cases := []struct {
		uri string
		ok  bool
	}{
		{"https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img", true},
		{"http://example.com/x.qcow2", true},
		{"http://example.com:80/x", true},
		{"https://example.com:443/x", true},
		{"http://example.com:8080/x", false},
		{"https://example.com:22/x", false},
		{"ftp://example.com/x", false},
		{"file:///etc/passwd", false},
		{"http://user:pw@example.com/x", false},
		{"http:///x", false},
		{"", false},
		{"http://[::1", false},
	}
	for _, c := range cases {
		err := catalog.DefaultWebDownloader.Check(ctx, c.uri)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, catalog.ErrInvalid)) {
			t.Errorf("%q: %v", c.uri, err)
		}
	}
	if err := (&catalog.WebDownloader{}).Check(ctx, "http://93.184.216.34:8080/x"); err != nil {
		t.Fatalf("any port allowed: %v", err)
	}
}
