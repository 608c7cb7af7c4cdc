// Package storage holds the bytes and the facts about them: content-addressed blobs on the
// filesystem (stored once per server, streamed in with the digest computed on the way,
// committed by fsync + rename), upload sessions that survive a restart, the repository
// model (links, manifests, tags, referrers) over the metadata store, and garbage collection.
package storage

import (
	"errors"
	"io"

	"github.com/opencontainers/go-digest"
)

// Domain errors. Handlers map them to protocol errors; nothing else does.
var (
	ErrBlobUnknown     = errors.New("blob unknown")
	ErrManifestUnknown = errors.New("manifest unknown")
	ErrUploadUnknown   = errors.New("upload unknown")
	ErrNameUnknown     = errors.New("repository unknown")
	ErrDigestMismatch  = errors.New("digest does not match content")
	ErrRangeInvalid    = errors.New("chunk out of order")
	ErrBlobsMissing    = errors.New("manifest references unknown blobs")
	ErrTooLarge        = errors.New("content too large")
	ErrUnsupportedAlg  = errors.New("unsupported digest algorithm")
	// ErrCollected means garbage collection took the blob while it was being committed (a
	// grace period shorter than the commit); the client pushes it again.
	ErrCollected = errors.New("blob was garbage-collected during the commit; push it again")
	// ErrTooManyUploads means the project has as many open upload sessions as it may.
	ErrTooManyUploads = errors.New("too many open upload sessions in the project")
	// ErrIncomplete means the client's body broke off or could not be read.
	ErrIncomplete = errors.New("request body incomplete")
)

// Fetcher opens a committed blob. The caller closes the file. A missing blob is
// ErrBlobUnknown.
type Fetcher interface {
	Open(d digest.Digest) (ReadSeekCloser, int64, error)
}

// Statter reports a committed blob's size, or ErrBlobUnknown.
type Statter interface {
	Stat(d digest.Digest) (int64, error)
}

// ReadSeekCloser is what a blob read gives: seekable, so Range requests need no buffering.
type ReadSeekCloser interface {
	io.ReadSeeker
	io.Closer
}

// SupportedAlgorithm reports whether the server can store content under digests of alg.
func SupportedAlgorithm(alg digest.Algorithm) bool {
	return alg == digest.SHA256 || alg == digest.SHA512
}

// ParseDigest parses s and checks that its algorithm is one the server stores.
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", err
	}
	if !SupportedAlgorithm(d.Algorithm()) {
		return "", ErrUnsupportedAlg
	}
	return d, nil
}
