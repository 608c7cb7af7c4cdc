package catalog_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/xloud/xloud-image/catalog"
)

// TestErrorKinds: a refusal matches its kind's sentinel and its cause under errors.Is, and
// KindOf finds its kind and wire message through wrapping; other errors have no kind.
func TestErrorKinds(t *testing.T) {
	e := &catalog.Error{Kind: catalog.BadData, Message: "disk has a backing file", Err: io.ErrUnexpectedEOF}
	wrapped := fmt.Errorf("push a/disks: %w", e)
	if !errors.Is(wrapped, catalog.ErrBadData) || errors.Is(wrapped, catalog.ErrInvalid) || !errors.Is(wrapped, io.ErrUnexpectedEOF) {
		t.Fatal("errors.Is on a refusal")
	}
	if k, msg := catalog.KindOf(wrapped); k != catalog.BadData || msg != "disk has a backing file" {
		t.Fatalf("KindOf: %v %q", k, msg)
	}
	if k, msg := catalog.KindOf(fmt.Errorf("x: %w", catalog.ErrGone)); k != catalog.Gone || msg != "" {
		t.Fatalf("KindOf a sentinel: %v %q", k, msg)
	}
	if k, _ := catalog.KindOf(io.EOF); k != 0 {
		t.Fatalf("KindOf a fault: %v", k)
	}
}
