package catalog_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/xloud/xloud-image/catalog"
)

// TestSnapshots lists a base image's snapshots through the referrers of its index: in its
// own repository and in another, only to callers who may read them, never other images.
func TestSnapshots(t *testing.T) {
	w := newWorld(t)
	qcow := qemuImage(t, "-f", "qcow2", "16M")
	upload := func(in catalog.NewImage) catalog.Image {
		t.Helper()
		img, err := w.cat.Create(ctx, w.as["member-a"], in)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = w.cat.Upload(ctx, w.as["member-a"], img.ID, bytes.NewReader(qcow), int64(len(qcow))); err != nil {
			t.Fatal(err)
		}
		return img
	}
	base := upload(catalog.NewImage{Name: sp("golden"), DiskFormat: sp("qcow2"), ContainerFormat: sp("bare")})
	snap := func(name string) catalog.Image {
		return upload(catalog.NewImage{Name: sp(name), DiskFormat: sp("qcow2"), ContainerFormat: sp("bare"),
			Properties: map[string]string{"image_type": "snapshot", "base_image_ref": base.ID}})
	}
	other, same := snap("golden-snap"), snap("golden")
	upload(catalog.NewImage{Name: sp("unrelated"), DiskFormat: sp("qcow2"), ContainerFormat: sp("bare")})
	for _, who := range []string{"member-a", "reader-a", "admin"} {
		got, err := w.cat.Snapshots(ctx, w.as[who], base.ID)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		var ids []string
		for _, img := range got {
			ids = append(ids, img.ID)
		}
		slices.Sort(ids)
		want := []string{other.ID, same.ID}
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Errorf("%s: snapshots %v, want %v", who, ids, want)
		}
	}
	if _, err := w.cat.Snapshots(ctx, w.as["member-b"], base.ID); !catalog.IsNotFound(err) {
		t.Fatalf("another project's snapshots of an image it cannot see: %v", err)
	}
}

// TestStoresOf names the blob store of an image's disk; none before it has data.
func TestStoresOf(t *testing.T) {
	w := newWorld(t)
	qcow := qemuImage(t, "-f", "qcow2", "16M")
	img := w.create(t, "member-a", "golden", "qcow2")
	if got, err := w.cat.StoresOf(ctx, w.as["member-a"], img.ID); err != nil || len(got) != 0 {
		t.Fatalf("stores of a queued image: %v %v", got, err)
	}
	if _, err := w.cat.Upload(ctx, w.as["member-a"], img.ID, bytes.NewReader(qcow), int64(len(qcow))); err != nil {
		t.Fatal(err)
	}
	if got, err := w.cat.StoresOf(ctx, w.as["reader-a"], img.ID); err != nil || !slices.Equal(got, []string{w.store.DefaultStore()}) {
		t.Fatalf("stores: %v %v, want [%s]", got, err, w.store.DefaultStore())
	}
	if _, err := w.cat.StoresOf(ctx, w.as["member-b"], img.ID); !catalog.IsNotFound(err) {
		t.Fatalf("stores of an image the caller cannot see: %v", err)
	}
}
