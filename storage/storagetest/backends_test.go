package storagetest_test

import (
	"fmt"
	"testing"

	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/storagetest"
)

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	open := func(t *testing.T) storage.BlobStore {
		f, err := storage.OpenFiles(dir)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	storagetest.Test(t, open)
	t.Run("Store", func(t *testing.T) {
		storagetest.TestStore(t, func(t *testing.T) func(t *testing.T) storage.BlobStore {
			dir = t.TempDir()
			return open
		})
	})
}

// TestS3 runs the suite on a real S3 server (versitygw), which enforces the 5 MiB part
// minimum a fake would not.
func TestS3(t *testing.T) {
	s3 := testenv.StartS3(t)
	url := s3.URL(s3.Bucket("blobs"), "prefix/dir")
	open := func(t *testing.T) storage.BlobStore {
		b, err := storage.OpenS3(url)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	storagetest.Test(t, open)
	n := 0
	t.Run("Store", func(t *testing.T) {
		storagetest.TestStore(t, func(t *testing.T) func(t *testing.T) storage.BlobStore {
			n++
			url = s3.URL(s3.Bucket(fmt.Sprintf("store%d", n)), "")
			return open
		})
	})
}
