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
	"os"

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
	Started   int64            `json:"started"`
	Updated   int64            `json:"updated"`
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
	u := Upload{ID: uuid.NewString(), Repo: repo, Algorithm: alg, Started: now, Updated: now}
	f, err := os.OpenFile(s.files.UploadPath(u.ID), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return Upload{}, fmt.Errorf("start upload: %w", err)
	}
	if err := f.Close(); err != nil {
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
		if rerr := os.Remove(s.files.UploadPath(u.ID)); rerr != nil {
			s.Log.Warn("remove the file of an upload not started; gc takes it", "upload", u.ID, "err", rerr)
		}
		if errors.Is(err, ErrTooManyUploads) {
			return Upload{}, err
		}
		return Upload{}, fmt.Errorf("start upload: %w", err)
	}
	return u, nil
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
	return s.appendLocked(ctx, repo, id, start, body, max, "")
}

// appendLocked does AppendUpload's work under the session lock. If want names an algorithm
// and nothing was written yet, the session switches to hashing with it, so a monolithic
// upload is hashed once, in the algorithm of its digest.
func (s *Store) appendLocked(ctx context.Context, repo, id string, start int64, body io.Reader, max int64, want digest.Algorithm) (Upload, error) {
	u, err := s.GetUpload(ctx, repo, id)
	if err != nil {
		return u, err
	}
	if start >= 0 && start != u.Offset {
		return u, ErrRangeInvalid
	}
	if u.Offset == 0 && want != "" && want != u.Algorithm {
		u.Algorithm, u.HashState = want, nil
	}
	h, err := u.hasher()
	if err != nil {
		return u, err
	}
	f, err := os.OpenFile(s.files.UploadPath(id), os.O_RDWR, 0)
	if err != nil {
		return u, fmt.Errorf("open upload %s: %w", id, err)
	}
	defer f.Close()
	// Bytes past the acknowledged offset are from a write that never completed (a crash or
	// a failed chunk): drop them.
	if err := f.Truncate(u.Offset); err != nil {
		return u, fmt.Errorf("rewind upload %s: %w", id, err)
	}
	if _, err := f.Seek(u.Offset, io.SeekStart); err != nil {
		return u, fmt.Errorf("seek upload %s: %w", id, err)
	}
	n, err := ingest(f, u.Offset, body, max, h)
	if err == nil && n > 0 {
		err = f.Sync()
	}
	if err != nil {
		s.rewind(f, id, u.Offset)
		return u, fmt.Errorf("write upload %s: %w", id, err)
	}
	if n == 0 && u.HashState != nil {
		return u, nil
	}
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return u, fmt.Errorf("save hash state of upload %s: %w", id, err)
	}
	prev := u.Offset
	u.Offset += n
	u.HashState = state
	u.Updated = s.Now().Unix()
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
	if err != nil {
		s.rewind(f, id, prev)
		if errors.Is(err, meta.ErrNotFound) {
			err = ErrUploadUnknown
		}
		return u, err
	}
	return u, nil
}

// CommitUpload appends the final chunk (body may be empty; start as in AppendUpload), checks
// that the whole content has digest d, and makes it a blob linked into repo. The data file
// becomes the blob by rename; nothing is copied. On a digest mismatch the session is
// discarded and nothing is stored.
func (s *Store) CommitUpload(ctx context.Context, repo, id string, d digest.Digest, start int64, body io.Reader, max int64) (int64, error) {
	unlock := s.uploadLocks.Lock(id)
	defer unlock()
	u, err := s.appendLocked(ctx, repo, id, start, body, max, d.Algorithm())
	if err != nil {
		return 0, err
	}
	got, err := s.uploadDigest(u, d.Algorithm())
	if err != nil {
		return 0, err
	}
	if got != d {
		s.cancelLocked(ctx, id)
		return 0, ErrDigestMismatch
	}
	// Every chunk was fsynced before it was acknowledged (appendLocked), so the data is
	// durable already: commit is a rename.
	path := s.files.UploadPath(id)
	if err := s.claimBlob(ctx, d, u.Offset); err != nil {
		return 0, fmt.Errorf("commit upload %s: %w", id, err)
	}
	if err := s.files.commit(path, d); err != nil {
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

// uploadDigest is the digest of the session's content under alg: from the running hash when
// it is the session's algorithm, else by reading the data once more.
func (s *Store) uploadDigest(u Upload, alg digest.Algorithm) (digest.Digest, error) {
	if alg == u.Algorithm {
		h, err := u.hasher()
		if err != nil {
			return "", err
		}
		return digest.NewDigest(alg, h), nil
	}
	f, err := os.Open(s.files.UploadPath(u.ID))
	if err != nil {
		return "", fmt.Errorf("rehash upload %s: %w", u.ID, err)
	}
	defer f.Close()
	h := newHash(alg)
	if _, err := io.Copy(h, io.LimitReader(f, u.Offset)); err != nil {
		return "", fmt.Errorf("rehash upload %s: %w", u.ID, err)
	}
	return digest.NewDigest(alg, h), nil
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
	err := s.meta.Update(ctx, func(tx meta.Tx) error {
		var u Upload
		err := getJSON(tx, keyUpload(id), &u)
		if errors.Is(err, meta.ErrNotFound) {
			return tx.SetRemove(setUploads, id) // the file may be left over; remove it too
		}
		if err != nil {
			return err
		}
		if !remove(u) {
			return errSessionLive
		}
		return dropSession(tx, u)
	})
	if errors.Is(err, errSessionLive) {
		return err
	}
	if err != nil {
		return fmt.Errorf("cancel upload %s: %w", id, err)
	}
	if err := os.Remove(s.files.UploadPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove upload %s: %w", id, err)
	}
	return nil
}

// rewind cuts an upload's file back to what its record says was received, after a failed
// append. A failure is logged: the next append rewinds again before writing.
func (s *Store) rewind(f *os.File, id string, offset int64) {
	if err := f.Truncate(offset); err != nil {
		s.Log.Warn("rewind upload after a failed append", "upload", id, "offset", offset, "err", err)
	}
}
