package catalog_test

import (
	"testing"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/catalog"
)

// TestAllowed answers as the policy does for each caller, and a missing image is missing.
func TestAllowed(t *testing.T) {
	w := newWorld(t)
	img := w.create(t, "member-a", "golden", "qcow2")
	acts := []auth.ImageAction{auth.ImageGet, auth.ImageModify, auth.ImageDelete, auth.ImagePublicize, auth.ImageDeactivate}
	for who, want := range map[string][5]bool{
		"member-a": {true, true, true, false, true},
		"reader-a": {true, false, false, false, false},
		"member-b": {false, false, false, false, false},
		"admin":    {true, true, true, true, true},
	} {
		got, err := w.cat.Allowed(ctx, w.as[who], img.ID, acts...)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		for i, act := range acts {
			if got[act] != want[i] {
				t.Errorf("%s %s: %v, want %v", who, act, got[act], want[i])
			}
		}
	}
	if _, err := w.cat.Allowed(ctx, w.as["admin"], "00000000-0000-4000-8000-000000000000", auth.ImageGet); !catalog.IsNotFound(err) {
		t.Fatalf("a missing image: %v", err)
	}
}
