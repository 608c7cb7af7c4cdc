package catalog_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xloud/xloud-image/catalog"
)

// BenchmarkListPage lists one page of 25 with a filter out of catalogs of different sizes:
// a property filter (one image in ten is a template), and a name filter (25 images named
// "golden", spread over the catalog). The cost of a page must not grow with the catalog
// (`make bench` runs it; the target is at most 2x from 1,000 to 100,000 images).
func BenchmarkListPage(b *testing.B) {
	filters := []struct {
		name string
		f    catalog.Filter
	}{
		{"property", catalog.Filter{Properties: map[string]string{"xloud_template": "true"}}},
		{"name", catalog.Filter{Names: []string{"golden"}}},
	}
	for _, filter := range filters {
		for _, n := range []int{1000, 100000} {
			benchmarkListPage(b, filter.name, filter.f, n)
		}
	}
}

func benchmarkListPage(b *testing.B, filterName string, filter catalog.Filter, n int) {
	b.Run(fmt.Sprintf("filter=%s/images=%d", filterName, n), func(b *testing.B) {
		w := newWorld(&testing.T{})
		owner := w.project["a"]
		start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		imgs := make([]catalog.Image, n)
		for i := range imgs {
			name := fmt.Sprintf("image-%06d", i)
			if i%(n/25) == 0 {
				name = "golden"
			}
			props := map[string]string{}
			if i%10 == 0 {
				props["xloud_template"] = "true"
			}
			imgs[i] = catalog.Image{
				ID: uuid.NewString(), Name: &name, Owner: owner, Status: catalog.StatusActive,
				Visibility: catalog.VisibilityShared, Tags: []string{}, Properties: props,
				CreatedAt: start.Add(time.Duration(i) * time.Second), UpdatedAt: start,
			}
		}
		if err := w.cat.BulkInsert(ctx, imgs); err != nil {
			b.Fatal(err)
		}
		imgs = nil
		runtime.GC() // the set-up's garbage is not the page's cost
		opt := catalog.ListOptions{Limit: 25, Filter: filter}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			page, _, err := w.cat.List(ctx, w.as["member-a"], opt)
			if err != nil || len(page) != 25 {
				b.Fatalf("page of %d: %v", len(page), err)
			}
		}
	})
}
