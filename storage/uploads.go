package storage

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/storage/meta"
)

// Upload is the state of one upload session. It lives in the metadata store, so a session
// survives a server restart and a client can resume where the last acknowledged chunk ended.
type Upload struct {
	ID     string `json:"id"`
	Repo   string `json:"repo"`
	Offset int64  `json:"offset"`
	// Algorithm is the digest algorithm computed while the bytes stream in; a commit under
	// another algorithm costs a second read of the data.
	Algorithm digest.Algorithm `json:"algorithm"`
	HashState []byte           `json:"hash_state,omitempty"`
	// Store names the blob store the bytes go to; State is what it needs to resume
	// (UploadWriter.State). A session recorded before stores had names is in the default
	// store.
	Store   string `json:"store,omitempty"`
	State   []byte `json:"state,omitempty"`
	Started int64  `json:"started"`
	Updated int64  `json:"updated"`
}

func newHash(alg digest.Algorithm) hash.Hash {
	if alg == digest.SHA512 {
		return sha512.New()
	}
	return sha256.New()
}

// hasher restores the session's running hash.
func (u *Upload) hasher() (hash.Hash, error) {
	h := newHash(u.Algorithm)
	if len(u.HashState) > 0 {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(u.HashState); err != nil {
			return nil, fmt.Errorf("restore hash state of upload %s: %w", u.ID, err)
		}
	}
	return h, nil
}

// StartUpload opens a session in repo whose bytes will be hashed with alg.
func (s *Store) StartUpload(ctx context.Context, repo string, alg digest.Algorithm) (Upload, error) {
	if alg == "" {
		alg = digest.SHA256
	}
	if !SupportedAlgorithm(alg) {
		return Upload{}, ErrUnsupportedAlg
	}
	now := s.Now().Unix()
	u := Upload{ID: uuid.NewString(), Repo: repo, Algorithm: alg, Store: s.def, Started: now, Updated: now}
	w, err := s.stores[u.Store].NewUpload(ctx, u.ID)
	if err != nil {
		return Upload{}, fmt.Errorf("start upload: %w", err)
	}
	if u.State, err = w.State(); err != nil {
		return Upload{}, fmt.Errorf("start upload: %w", err)
	}
	err = s.meta.Update(ctx, func(tx meta.Tx) error {
		if err := s.checkUploadLimit(tx, repo); err != nil {
			return err
		}
		if err := tx.SetAdd(setUploads, u.ID); err != nil {
			return err
		}
		if err := tx.SetAdd(setProjectUploads(repo), u.ID); err != nil {
			return err
		}
		return putJSON(tx, keyUpload(u.ID), u)
	})
	if err != nil {
		if rerr := w.Abort(ctx); rerr != nil {
			s.Log.Warn("remove the data of an upload not started; gc takes it", "upload", u.ID, "err", rerr)
		}
		if errors.Is(err, ErrTooManyUploads) {
			return Upload{}, err
		}
		return Upload{}, fmt.Errorf("start upload: %w", err)
	}
	return u, nil
}

// writer resumes session u in its blob store.
func (s *Store) writer(ctx context.Context, u Upload) (UploadWriter, error) {
	name := u.storeName(s)
	b, ok := s.stores[name]
	if !ok {
		return nil, fmt.Errorf("upload %s is in blob store %q, which is not configured", u.ID, name)
	}
	return b.ResumeUpload(ctx, u.ID, u.State, u.Offset)
}

// checkUploadLimit refuses a new session in repo's project once it holds UploadLimit. The
// count is read in the transaction, so concurrent starts on any node cannot pass the cap.
func (s *Store) checkUploadLimit(tx meta.Tx, repo string) error {
	if s.UploadLimit <= 0 {
		return nil
	}
	n, err := tx.SetLen(setProjectUploads(repo))
	if err != nil {
		return err
	}
	if n >= int64(s.UploadLimit) {
		return ErrTooManyUploads
	}
	return nil
}

// dropSession removes session u's records (not its file).
func dropSession(tx meta.Tx, u Upload) error {
	if err := tx.SetRemove(setUploads, u.ID); err != nil {
		return err
	}
	if err := tx.SetRemove(setProjectUploads(u.Repo), u.ID); err != nil {
		return err
	}
	return tx.Delete(keyUpload(u.ID))
}

// GetUpload returns session id of repo, or ErrUploadUnknown.
func (s *Store) GetUpload(ctx context.Context, repo, id string) (Upload, error) {
	var u Upload
	err := s.meta.View(ctx, func(tx meta.Tx) error { return getJSON(tx, keyUpload(id), &u) })
	if errors.Is(err, meta.ErrNotFound) || (err == nil && u.Repo != repo) {
		return Upload{}, ErrUploadUnknown
	}
	return u, err
}

// AppendUpload writes body at the end of session id. start is where the client says the
// chunk begins (-1 for a streamed chunk without Content-Range); a chunk that does not begin
// at the current end is ErrRangeInvalid. At most max bytes are taken (max < 0: no limit). A
// body that fails midway (client gone, truncated, too large) leaves the session as it was.
func (s *Store) AppendUpload(ctx context.Context, repo, id string, start int64, body io.Reader, max int64) (Upload, error) {
	unlock := s.uploadLocks.Lock(id)
	defer unlock()
	u, _, err := s.appendLocked(ctx, repo, id, start, body, max, "", false)
	return u, err
}

// appendLocked does AppendUpload's work under the session lock. If want names an algorithm
// and nothing was written yet, the session switches to hashing with it, so a monolithic
// upload is hashed once, in the algorithm of its digest. final says the body ends the
// upload. It returns the session as recorded after the append and its writer.
func (s *Store) appendLocked(ctx context.Context, repo, id string, start int64, body io.Reader, max int64, want digest.Algorithm, final bool) (Upload, UploadWriter, error) {
	u, err := s.GetUpload(ctx, repo, id)
	if err != nil {
		return u, nil, err
	}
	if start >= 0 && start != u.Offset {
		return u, nil, ErrRangeInvalid
	}
	if u.Offset == 0 && want != "" && want != u.Algorithm {
		u.Algorithm, u.HashState = want, nil
	}
	h, err := u.hasher()
	if err != nil {
		return u, nil, err
	}
	w, err := s.writer(ctx, u)
	if err != nil {
		return u, nil, err
	}
	n, err := w.Append(ctx, body, max, final, h)
	if err != nil {
		return u, nil, fmt.Errorf("write upload %s: %w", id, err)
	}
	if n == 0 && u.HashState != nil && !final {
		return u, w, nil
	}
	hs, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return u, nil, fmt.Errorf("save hash state of upload %s: %w", id, err)
	}
	st, err := w.State()
	if err != nil {
		return u, nil, fmt.Errorf("save state of upload %s: %w", id, err)
	}
	prev := u.Offset
	u.Offset += n
	u.HashState, u.State = hs, st
	u.Updated = s.Now().Unix()
	// What the append wrote past the recorded state is dropped by the next one if this
	// record does not land.
	err = s.meta.Update(ctx, func(tx meta.Tx) error {
		var cur Upload
		if err := getJSON(tx, keyUpload(id), &cur); err != nil {
			return err
		}
		if cur.Offset != prev { // another node appended meanwhile
			return ErrRangeInvalid
		}
		return putJSON(tx, keyUpload(id), u)
	})
	if errors.Is(err, meta.ErrNotFound) {
		err = ErrUploadUnknown
	}
	if err != nil {
		return u, nil, err
	}
	return u, w, nil
}

// CommitUpload appends the final chunk (body may be empty; start as in AppendUpload), checks
// that the whole content has digest d, and makes it a blob linked into repo. The blob store
// commits the session's bytes where they are; nothing is copied or read again. On a digest
// mismatch the session is discarded and nothing is stored.
func (s *Store) CommitUpload(ctx context.Context, repo, id string, d digest.Digest, start int64, body io.Reader, max int64) (int64, error) {
	unlock := s.uploadLocks.Lock(id)
	defer unlock()
	u, w, err := s.appendLocked(ctx, repo, id, start, body, max, d.Algorithm(), true)
	if err != nil {
		return 0, err
	}
	if _, ok := s.stores[u.storeName(s)].(UploadReader); !ok && d.Algorithm() != u.Algorithm {
		w, err = s.checkCommitted(ctx, u, w, d)
		if errors.Is(err, ErrDigestMismatch) {
			s.cancelLocked(ctx, id)
		}
		if err != nil {
			return 0, err
		}
	} else {
		got, err := s.uploadDigest(ctx, u, d.Algorithm())
		if err != nil {
			return 0, err
		}
		if got != d {
			s.cancelLocked(ctx, id)
			return 0, ErrDigestMismatch
		}
	}
	if err := s.commitBlob(ctx, u.storeName(s), w, d, u.Offset); err != nil {
		// commitBlob dropped the session's data; its record goes too, and the client
		// starts over.
		if cerr := s.meta.Update(ctx, func(tx meta.Tx) error { return dropSession(tx, u) }); cerr != nil {
			s.Log.Warn("forget an upload whose commit failed; the janitor takes it", "upload", id, "err", cerr)
		}
		return 0, err
	}
	err = s.meta.Update(ctx, func(tx meta.Tx) error {
		if err := s.linkBlob(tx, repo, d, u.Offset); err != nil {
			return err
		}
		return dropSession(tx, u)
	})
	if errors.Is(err, errBlobBusy) {
		return 0, ErrCollected
	}
	if err != nil {
		return 0, fmt.Errorf("link blob %s into %s: %w", d, repo, err)
	}
	return u.Offset, nil
}

// storeName is where session u's bytes are; a session recorded before stores had names is
// in the data directory's store, as legacy blob records are.
func (u Upload) storeName(s *Store) string {
	if u.Store != "" {
		return u.Store
	}
	if _, ok := s.stores[DefaultStoreName]; ok {
		return DefaultStoreName
	}
	return s.def
}

// uploadDigest is the digest of the session's content under alg: from the running hash when
// it is the session's algorithm, else by reading the data once more (a digest of another
// algorithm than the session was started with, after chunks; rare).
func (s *Store) uploadDigest(ctx context.Context, u Upload, alg digest.Algorithm) (digest.Digest, error) {
	if alg == u.Algorithm {
		h, err := u.hasher()
		if err != nil {
			return "", err
		}
		return digest.NewDigest(alg, h), nil
	}
	r, err := s.readUpload(ctx, u)
	if err != nil {
		return "", fmt.Errorf("rehash upload %s: %w", u.ID, err)
	}
	defer r.Close()
	h := newHash(alg)
	if _, err := io.Copy(h, io.LimitReader(r, u.Offset)); err != nil {
		return "", fmt.Errorf("rehash upload %s: %w", u.ID, err)
	}
	return digest.NewDigest(alg, h), nil
}

// UploadReader is a blob store whose session data can be read back before commit.
type UploadReader interface {
	ReadUpload(ctx context.Context, id string, size int64) (io.ReadCloser, error)
}

func (s *Store) readUpload(ctx context.Context, u Upload) (io.ReadCloser, error) {
	ur, ok := s.stores[u.storeName(s)].(UploadReader)
	if !ok {
		return nil, fmt.Errorf("blob store %s cannot read uploads back", u.storeName(s))
	}
	return ur.ReadUpload(ctx, u.ID, u.Offset)
}

// checkCommitted is uploadDigest for a store that cannot read a session back (S3 parts are
// unreadable before the multipart upload completes): it commits first, hashes the object
// once, and removes it on a mismatch. It returns a writer whose Commit names the object.
func (s *Store) checkCommitted(ctx context.Context, u Upload, w UploadWriter, d digest.Digest) (UploadWriter, error) {
	b := s.stores[u.storeName(s)]
	key, err := w.Commit(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("commit upload %s: %w", u.ID, err)
	}
	cw := committedWriter{b: b, key: key}
	r, err := b.Open(ctx, key, 0, -1)
	if err != nil {
		cw.Abort(ctx)
		return nil, fmt.Errorf("rehash upload %s: %w", u.ID, err)
	}
	defer r.Close()
	h := newHash(d.Algorithm())
	if _, err := io.Copy(h, r); err != nil {
		cw.Abort(ctx)
		return nil, fmt.Errorf("rehash upload %s: %w", u.ID, err)
	}
	if digest.NewDigest(d.Algorithm(), h) != d {
		cw.Abort(ctx)
		return nil, ErrDigestMismatch
	}
	return cw, nil
}

// committedWriter is a session whose bytes are committed already, at key.
type committedWriter struct {
	b   BlobStore
	key string
}

func (committedWriter) Append(context.Context, io.Reader, int64, bool, ...io.Writer) (int64, error) {
	return 0, errors.New("append to a committed upload")
}
func (committedWriter) State() ([]byte, error) { return nil, nil }
func (c committedWriter) Commit(context.Context, digest.Digest) (string, error) {
	return c.key, nil
}
func (c committedWriter) Abort(ctx context.Context) error {
	_, err := c.b.Remove(ctx, c.key)
	return err
}

// CancelUpload ends session id of repo and drops its data.
func (s *Store) CancelUpload(ctx context.Context, repo, id string) error {
	unlock := s.uploadLocks.Lock(id)
	defer unlock()
	if _, err := s.GetUpload(ctx, repo, id); err != nil {
		return err
	}
	return s.cancelLocked(ctx, id)
}

func (s *Store) cancelLocked(ctx context.Context, id string) error {
	return s.removeSession(ctx, id, func(Upload) bool { return true })
}

// removeSession drops session id, records and data, when remove approves its current
// record (else errSessionLive); a session already gone is not an error.
func (s *Store) removeSession(ctx context.Context, id string, remove func(Upload) bool) error {
	var gone Upload
	err := s.meta.Update(ctx, func(tx meta.Tx) error {
		gone = Upload{} // Update may run this more than once
		var u Upload
		err := getJSON(tx, keyUpload(id), &u)
		if errors.Is(err, meta.ErrNotFound) {
			// The data may be left over; GC finds it as staging without a session.
			return tx.SetRemove(setUploads, id)
		}
		if err != nil {
			return err
		}
		if !remove(u) {
			return errSessionLive
		}
		gone = u
		return dropSession(tx, u)
	})
	if errors.Is(err, errSessionLive) {
		return err
	}
	if err != nil {
		return fmt.Errorf("cancel upload %s: %w", id, err)
	}
	if gone.ID == "" {
		return nil
	}
	w, err := s.writer(ctx, gone)
	if err == nil {
		err = w.Abort(ctx)
	}
	if err != nil {
		return fmt.Errorf("remove upload %s: %w", id, err)
	}
	return nil
}
