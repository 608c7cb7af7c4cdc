package catalog_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestStatusChangesLogged: every committed status change of an image (created, saving,
// active, deactivated, deleted) is one JSON line at INFO naming the image, the old and new
// status and the owner.
func TestStatusChangesLogged(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	logs := &testenv.SyncBuffer{}
	w.cat.Log = slog.New(slog.NewJSONHandler(logs, nil))
	img := w.create(t, "member-a", "disk", "raw")
	if _, err := w.cat.Upload(ctx, w.as["member-a"], img.ID, bytes.NewReader(make([]byte, 4096)), 4096); err != nil {
		t.Fatal(err)
	}
	if err := w.cat.Deactivate(ctx, w.as["admin"], img.ID); err != nil {
		t.Fatal(err)
	}
	if err := w.cat.Delete(ctx, w.as["admin"], img.ID); err != nil {
		t.Fatal(err)
	}
	var moves []string
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] != "image status changed" {
			continue
		}
		if rec["level"] != "INFO" || rec["image"] != img.ID || rec["project"] != w.project["a"] || rec["name"] != "disk" {
			t.Errorf("status line %v", rec)
		}
		moves = append(moves, rec["from"].(string)+">"+rec["to"].(string))
	}
	want := ">queued saving>active active>deactivated deactivated>deleted"
	if got := strings.Join(moves, " "); !strings.Contains(got, "queued>saving") || !strings.HasSuffix(got, "deactivated>deleted") ||
		!strings.HasPrefix(got, ">queued") || !strings.Contains(got, "active>deactivated") {
		t.Errorf("status changes %q, want like %q", got, want)
	}
}
