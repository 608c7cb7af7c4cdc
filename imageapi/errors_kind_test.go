package imageapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/xloud/xloud-image/catalog"
)

// TestCatalogKindsMapByKind: every catalog kind has Glance's status, and the message sent is
// the refusal's own, whatever context wraps it and whatever its cause says (the cause is for
// logs).
func TestCatalogKindsMapByKind(t *testing.T) {
	for k := catalog.Kind(1); k.Sentinel() != nil; k++ {
		if _, ok := kindStatus[k]; !ok {
			t.Errorf("kind %d (%v) has no status", k, k.Sentinel())
		}
	}
	cause := errors.New("meta: write tx: disk full")
	err := fmt.Errorf("upload image 42: %w", &catalog.Error{Kind: catalog.Conflict, Message: "image status is saving, not queued", Err: cause})
	status, msg, fault := statusOf(err)
	if status != http.StatusConflict || msg != "image status is saving, not queued" || fault {
		t.Fatalf("wrapped conflict: %d %q %v", status, msg, fault)
	}
	status, msg, fault = statusOf(fmt.Errorf("get: %w", catalog.ErrNotFound))
	if status != http.StatusNotFound || msg != "" || fault {
		t.Fatalf("bare sentinel: %d %q %v", status, msg, fault)
	}
	status, msg, fault = statusOf(fmt.Errorf("publish: %w", cause))
	if status != http.StatusInternalServerError || msg == cause.Error() || !fault {
		t.Fatalf("fault: %d %q %v", status, msg, fault)
	}
}
