package storage

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/opencontainers/go-digest"
)

// ErrStoreUnavailable means a blob store did not answer (network, refused connection,
// timeout). Both doors answer 503; nothing half-written becomes visible.
var ErrStoreUnavailable = errors.New("blob store unavailable")

// ErrNotExist is what a BlobStore returns, unwrapped or wrapped, for a key it does not hold.
var ErrNotExist = os.ErrNotExist

// BlobStore holds blob bytes under keys it chooses. It knows nothing of repositories,
// records or digests beyond the one a commit names: the metadata store maps a digest to
// the store and key that hold it (blobRecord). Every method takes a context and may be
// called from any node at any time.
type BlobStore interface {
	// Stat returns the size of the object at key, or an error wrapping ErrNotExist.
	Stat(ctx context.Context, key string) (int64, error)
	// Open streams length bytes of key from off (length < 0: to the end). The caller
	// closes the reader. A missing key is ErrNotExist.
	Open(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	// NewUpload begins upload session id (a UUID). Nothing is stored until the first
	// Append.
	NewUpload(ctx context.Context, id string) (UploadWriter, error)
	// ResumeUpload continues session id from the state its last acknowledged Append left
	// (UploadWriter.State) at offset bytes; any node may resume any session.
	ResumeUpload(ctx context.Context, id string, state []byte, offset int64) (UploadWriter, error)
	// DropUpload removes whatever staging session id left behind (upload data, pending
	// multipart uploads), knowing only its id: what GC does with sessions that have no
	// record. It never removes a committed key. Removing nothing is not an error.
	DropUpload(ctx context.Context, id string) error
	// Remove deletes the committed object at key; a missing key is not an error, and the
	// result reports whether something was removed.
	Remove(ctx context.Context, key string) (bool, error)
	// Walk calls fn for every object the store holds: committed blobs and the staging of
	// upload sessions alike (Entry.Upload names the session of the latter).
	Walk(ctx context.Context, fn func(Entry) error) error
}

// Entry is one object found by BlobStore.Walk.
type Entry struct {
	// Key is a committed object's key ("" for upload staging).
	Key string
	// Upload is the session id of upload staging, or of the session that wrote a committed
	// object when its key tells (S3's data/<id>); "" otherwise.
	Upload string
	// Digest is the digest of a committed object whose key is its content address (the
	// filesystem store's); "" otherwise.
	Digest   digest.Digest
	Size     int64
	Modified time.Time
}

// UploadWriter appends to one upload session. Appends of one session are serialised by
// the caller (Store holds a lock per session); each is all or nothing: when it fails, the
// session stays as its last acknowledged State said, and the next Append (on any node,
// after ResumeUpload) continues from there.
type UploadWriter interface {
	// Append streams r (at most max bytes, max < 0: no limit; more is ErrTooLarge) to the
	// end of the session, feeding the same bytes to every sink (hashes) as they pass. final
	// says these are the last bytes before Commit, so a store may write them as the last
	// piece whatever their size. It returns the bytes taken.
	Append(ctx context.Context, r io.Reader, max int64, final bool, sinks ...io.Writer) (int64, error)
	// State is what ResumeUpload needs to continue after the last successful Append; the
	// Store saves it in the session's record. It may be nil.
	State() ([]byte, error)
	// Commit makes the session's bytes the blob d and returns the key they are at. The
	// bytes are never copied or read again. After Commit the session holds nothing.
	Commit(ctx context.Context, d digest.Digest) (string, error)
	// Abort drops everything the session stored, a final piece included.
	Abort(ctx context.Context) error
}

// FileOpener is a BlobStore whose objects are local files: reads go out with sendfile.
type FileOpener interface {
	OpenFile(ctx context.Context, key string) (*os.File, error)
}

// Redirector is a BlobStore that can hand clients a short-lived URL to fetch key from
// directly (a presigned S3 GET). ok is false when the store is configured not to.
type Redirector interface {
	RedirectURL(ctx context.Context, key string) (url string, ok bool, err error)
}

// Pinger is a BlobStore that can say whether it answers (for /readyz).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Describer is a BlobStore that can say what it is, for operators (Glance's
// /v2/info/stores/detail): a type ("file", "s3") and properties that never hold secrets.
type Describer interface {
	Describe() (typ string, props map[string]any)
}
