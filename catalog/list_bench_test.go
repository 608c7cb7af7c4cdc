package catalog_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xloud/xloud-image/catalog"
)

// BenchmarkListPage lists one page of 25 with a property filter (one image in ten is a
// template) out of catalogs of different sizes: the cost of a page must not grow with the
// catalog (`make bench` reports the 100,000/1,000 ratio; the target is at most 2x).
func BenchmarkListPage(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("images=%d", n), func(b *testing.B) {
			w := newWorld(&testing.T{})
			owner := w.project["a"]
			start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			imgs := make([]catalog.Image, n)
			for i := range imgs {
				name := fmt.Sprintf("image-%06d", i)
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
			opt := catalog.ListOptions{Limit: 25, Filter: catalog.Filter{Properties: map[string]string{"xloud_template": "true"}}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				page, _, err := w.cat.List(ctx, w.as["member-a"], opt)
				if err != nil || len(page) != 25 {
					b.Fatalf("page of %d: %v", len(page), err)
				}
			}
		})
	}
}
