package dashboard

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/xloud/xloud-image/auth"
	"github.com/xloud/xloud-image/storage/meta"
)

// TestSessionsPurged: a sign-in removes the records of sessions that expired, and only
// those; a signed-out session leaves nothing.
func TestSessionsPurged(t *testing.T) {
	ctx := context.Background()
	m, err := meta.OpenBolt(filepath.Join(t.TempDir(), "meta.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	d := &Dashboard{opt: Options{Meta: m, Now: func() time.Time { return now }, Log: slog.Default()}}
	start := func(ttl time.Duration) string {
		w := httptest.NewRecorder()
		tok := auth.Token{UserID: "u", Expires: now.Add(ttl)}
		if err := d.startSession(ctx, w, httptest.NewRequest("POST", "/dashboard/login", nil), "secret", tok); err != nil {
			t.Fatal(err)
		}
		return w.Result().Cookies()[0].Value
	}
	stored := func(id string) bool {
		err := m.View(ctx, func(tx meta.Tx) error { _, err := tx.Get(keySession(id)); return err })
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	short, long := start(time.Hour), start(3*time.Hour)
	now = now.Add(2 * time.Hour)
	third := start(time.Hour)
	if stored(short) || !stored(long) || !stored(third) {
		t.Fatalf("after a sign-in 2h later: expired kept %v, live kept %v %v", stored(short), stored(long), stored(third))
	}
	if err := d.endSession(ctx, &session{id: long, record: record{Expires: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	var n int64
	m.View(ctx, func(tx meta.Tx) (err error) { n, err = tx.SetLen(setSessions); return err })
	if stored(long) || n != 1 {
		t.Fatalf("after sign-out: record kept %v, %d sessions indexed, want 1", stored(long), n)
	}
}
