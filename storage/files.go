package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// Files is the filesystem side of the store: committed blobs at their content address and
// the data of upload sessions, under one root so a commit is a rename, never a copy.
type Files struct {
	root string
}

// OpenFiles prepares the blob and upload directories under root.
func OpenFiles(root string) (*Files, error) {
	for _, d := range []string{"blobs", "uploads"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o750); err != nil {
			return nil, fmt.Errorf("create %s directory: %w", d, err)
		}
	}
	return &Files{root: root}, nil
}

// BlobPath is where the committed blob d lives (see layout.go).
func (f *Files) BlobPath(d digest.Digest) string {
	hex := d.Encoded()
	return filepath.Join(f.root, "blobs", string(d.Algorithm()), hex[:2], hex)
}

// UploadPath is where the data of upload session id grows.
func (f *Files) UploadPath(id string) string {
	return filepath.Join(f.root, "uploads", id)
}

func (f *Files) Open(d digest.Digest) (ReadSeekCloser, int64, error) {
	file, err := os.Open(f.BlobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, ErrBlobUnknown
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open blob %s: %w", d, err)
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, 0, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return file, st.Size(), nil
}

func (f *Files) Stat(d digest.Digest) (int64, error) {
	st, err := os.Stat(f.BlobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, ErrBlobUnknown
	}
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return st.Size(), nil
}

// commit moves the finished, fsynced file at from to the content address of d. If the blob
// is already there the bytes are the same (same digest), so from is just removed.
func (f *Files) commit(from string, d digest.Digest) error {
	to := f.BlobPath(d)
	if _, err := os.Stat(to); err == nil {
		return os.Remove(from)
	}
	dir := filepath.Dir(to)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	// The rename is durable only once the directory entry is.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	return nil
}

// removeBlob deletes the committed blob d and reports whether it was there; a missing blob
// is not an error.
func (f *Files) removeBlob(d digest.Digest) (bool, error) {
	err := os.Remove(f.BlobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove blob %s: %w", d, err)
	}
	return true, nil
}

// writeSmall stores small content (a manifest) under d: temp file beside the target, write,
// fsync, rename.
func (f *Files) writeSmall(d digest.Digest, content []byte) error {
	if _, err := os.Stat(f.BlobPath(d)); err == nil {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Join(f.root, "uploads"), "manifest-*")
	if err != nil {
		return fmt.Errorf("store %s: %w", d, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return fmt.Errorf("store %s: %w", d, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("store %s: %w", d, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("store %s: %w", d, err)
	}
	return f.commit(tmp.Name(), d)
}

// walkBlobs calls fn for every committed blob file.
func (f *Files) walkBlobs(fn func(d digest.Digest, info fs.FileInfo) error) error {
	root := filepath.Join(f.root, "blobs")
	return filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		alg := filepath.Base(filepath.Dir(filepath.Dir(path)))
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), e.Name())
		if d.Validate() != nil {
			return nil // not ours
		}
		info, err := e.Info()
		if err != nil {
			return nil
		}
		return fn(d, info)
	})
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
