package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Files is the filesystem blob store: committed blobs at their content address and the
// data of upload sessions, under one root so a commit is a rename, never a copy. Its keys
// are paths under the root (see layout.go), the same layout data directories have always
// had, so records written before blob records named a key still resolve (fileKey).
type Files struct {
	root string
}

var (
	_ BlobStore  = (*Files)(nil)
	_ FileOpener = (*Files)(nil)
)

// OpenFiles prepares the blob and upload directories under root.
func OpenFiles(root string) (*Files, error) {
	for _, d := range []string{"blobs", "uploads"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o750); err != nil {
			return nil, fmt.Errorf("create %s directory: %w", d, err)
		}
	}
	return &Files{root: root}, nil
}

// fileKey is where the filesystem store keeps blob d: blobs/<alg>/<2 hex>/<hex>.
func fileKey(d digest.Digest) string {
	hex := d.Encoded()
	return "blobs/" + string(d.Algorithm()) + "/" + hex[:2] + "/" + hex
}

// BlobPath is where the committed blob d lives.
func (f *Files) BlobPath(d digest.Digest) string {
	return filepath.Join(f.root, filepath.FromSlash(fileKey(d)))
}

// path maps a key to its file, refusing keys that would leave the root.
func (f *Files) path(key string) (string, error) {
	if !filepath.IsLocal(key) {
		return "", fmt.Errorf("blob key %q: %w", key, ErrNotExist)
	}
	return filepath.Join(f.root, filepath.FromSlash(key)), nil
}

// UploadPath is where the data of upload session id grows.
func (f *Files) UploadPath(id string) string {
	return filepath.Join(f.root, "uploads", id)
}

// OpenFile opens the committed object at key as a file (sendfile on GET).
func (f *Files) OpenFile(_ context.Context, key string) (*os.File, error) {
	p, err := f.path(key)
	if err != nil {
		return nil, err
	}
	file, err := openRead(p)
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", key, err)
	}
	return file, nil
}

func (f *Files) Open(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	file, err := f.OpenFile(ctx, key)
	if err != nil {
		return nil, err
	}
	if _, err := file.Seek(off, io.SeekStart); err != nil {
		file.Close()
		return nil, fmt.Errorf("seek blob %s: %w", key, err)
	}
	if length < 0 {
		return file, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(file, length), file}, nil
}

func (f *Files) Stat(_ context.Context, key string) (int64, error) {
	p, err := f.path(key)
	if err != nil {
		return 0, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", key, err)
	}
	return st.Size(), nil
}

func (f *Files) Remove(_ context.Context, key string) (bool, error) {
	p, err := f.path(key)
	if err != nil {
		return false, err
	}
	err = os.Remove(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove blob %s: %w", key, err)
	}
	return true, nil
}

func (f *Files) NewUpload(_ context.Context, id string) (UploadWriter, error) {
	if !filepath.IsLocal(id) || strings.ContainsRune(id, '/') {
		return nil, fmt.Errorf("upload id %q is not a file name", id)
	}
	file, err := os.OpenFile(f.UploadPath(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("start upload: %w", err)
	}
	if err := file.Close(); err != nil {
		return nil, fmt.Errorf("start upload: %w", err)
	}
	return &fileUpload{f: f, id: id}, nil
}

func (f *Files) ResumeUpload(_ context.Context, id string, _ []byte, offset int64) (UploadWriter, error) {
	if !filepath.IsLocal(id) || strings.ContainsRune(id, '/') {
		return nil, fmt.Errorf("upload id %q is not a file name", id)
	}
	return &fileUpload{f: f, id: id, offset: offset}, nil
}

func (f *Files) DropUpload(_ context.Context, id string) error {
	if !filepath.IsLocal(id) || strings.ContainsRune(id, '/') {
		return fmt.Errorf("upload id %q is not a file name", id)
	}
	if err := os.Remove(f.UploadPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove upload %s: %w", id, err)
	}
	return nil
}

// ReadUpload reads session id's data back (a digest of another algorithm at commit).
func (f *Files) ReadUpload(_ context.Context, id string, size int64) (io.ReadCloser, error) {
	file, err := os.Open(f.UploadPath(id))
	if err != nil {
		return nil, fmt.Errorf("read upload %s: %w", id, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(file, size), file}, nil
}

// Walk reports committed blobs under blobs/ and session data under uploads/.
func (f *Files) Walk(ctx context.Context, fn func(Entry) error) error {
	root := filepath.Join(f.root, "blobs")
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return nil // gone meanwhile
		}
		rel, err := filepath.Rel(f.root, path)
		if err != nil {
			return err
		}
		alg := filepath.Base(filepath.Dir(filepath.Dir(path)))
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), e.Name())
		if d.Validate() != nil || fileKey(d) != filepath.ToSlash(rel) {
			return nil // not ours
		}
		return fn(Entry{Key: filepath.ToSlash(rel), Digest: d, Size: info.Size(), Modified: info.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(f.root, "uploads"))
	if err != nil {
		return fmt.Errorf("walk uploads: %w", err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || e.IsDir() {
			continue
		}
		if err := fn(Entry{Upload: e.Name(), Size: info.Size(), Modified: info.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// fileUpload is one session's file, uploads/<id>, grown by appends and renamed at commit.
type fileUpload struct {
	f      *Files
	id     string
	offset int64
}

// Append writes behind and fsyncs before it returns, so an acknowledged chunk survives a
// crash and commit is a rename.
func (u *fileUpload) Append(_ context.Context, r io.Reader, max int64, _ bool, sinks ...io.Writer) (int64, error) {
	file, err := os.OpenFile(u.f.UploadPath(u.id), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("open upload %s: %w", u.id, ErrUploadUnknown)
	}
	if err != nil {
		return 0, fmt.Errorf("open upload %s: %w", u.id, err)
	}
	defer file.Close()
	// Bytes past the acknowledged offset are from a write that never completed (a crash or
	// a failed chunk): drop them.
	if err := file.Truncate(u.offset); err != nil {
		return 0, fmt.Errorf("rewind upload %s: %w", u.id, err)
	}
	if _, err := file.Seek(u.offset, io.SeekStart); err != nil {
		return 0, fmt.Errorf("seek upload %s: %w", u.id, err)
	}
	n, err := ingest(file, u.offset, r, max, sinks...)
	if err == nil && n > 0 {
		err = file.Sync()
	}
	if err != nil {
		// The next append truncates again; this only gives the space back early.
		_ = file.Truncate(u.offset)
		return 0, err
	}
	u.offset += n
	return n, nil
}

func (u *fileUpload) State() ([]byte, error) { return nil, nil }

// Commit renames the session's file to the content address of d. If the blob is already
// there the bytes are the same (same digest), so the session's file is just removed.
func (u *fileUpload) Commit(_ context.Context, d digest.Digest) (string, error) {
	key := fileKey(d)
	from := u.f.UploadPath(u.id)
	to := filepath.Join(u.f.root, filepath.FromSlash(key))
	if _, err := os.Stat(to); err == nil {
		return key, os.Remove(from)
	}
	dir := filepath.Dir(to)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("commit blob %s: %w", d, err)
	}
	if err := os.Rename(from, to); err != nil {
		return "", fmt.Errorf("commit blob %s: %w", d, err)
	}
	// The rename is durable only once the directory entry is.
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("commit blob %s: %w", d, err)
	}
	return key, nil
}

func (u *fileUpload) Abort(ctx context.Context) error { return u.f.DropUpload(ctx, u.id) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Describe says the store is a directory (Glance's filesystem store shows data_dir).
func (f *Files) Describe() (string, map[string]any) {
	return "file", map[string]any{"data_dir": f.root}
}
