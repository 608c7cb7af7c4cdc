package testenv

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

// OpenStore opens a blob store in a fresh temporary directory over the embedded metadata
// store, or over Redis at redisURL (under a key prefix of its own) when that is set. It is
// closed when the test ends; Meta() gives the metadata store.
func OpenStore(t testing.TB, redisURL string) *storage.Store {
	t.Helper()
	dir := t.TempDir()
	files, err := storage.OpenFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var m meta.Store
	if redisURL != "" {
		m, err = meta.OpenRedis(context.Background(), redisURL, "t"+filepath.Base(dir)+":")
	} else {
		m, err = meta.OpenBolt(filepath.Join(dir, "meta.db"), time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return storage.New(files, m)
}
