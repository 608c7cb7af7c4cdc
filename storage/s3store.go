package storage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/opencontainers/go-digest"
)

// S3 limits (the S3 API's, enforced by versitygw too): every part of a multipart upload
// but the last is at least minPart; at most maxParts parts.
const (
	minPart         = 5 << 20
	maxParts        = 10000
	defaultPartSize = 16 << 20
	// maxRedirect bounds a presigned URL's life; it is a bearer capability meanwhile.
	maxRedirect = 20 * time.Minute
)

// S3Store keeps blobs in an S3 bucket, under an optional prefix (layout.go). An upload is a
// multipart upload started at data/<upload id> the first time a part's worth of bytes is
// in; commit completes it where it is, so nothing is copied or read again. Bytes of an
// append that do not fill a part of at least 5 MiB wait in a staging object,
// uploads/<upload id>/tail, which the next append reads back (at most one part's worth)
// and carries on with. Memory per append is two part buffers whatever the blob size.
type S3Store struct {
	core     minio.Core
	bucket   string
	prefix   string // "" or ending in "/"
	partSize int64
	// redirect is how long presigned GET URLs live; 0: GETs stream through the server.
	redirect time.Duration
	bufs     sync.Pool
	secure   bool // https endpoint: no raw connections
	dialer   *net.Dialer
}

var (
	_ BlobStore  = (*S3Store)(nil)
	_ Redirector = (*S3Store)(nil)
	_ Pinger     = (*S3Store)(nil)
)

// OpenS3 opens the store a URL names:
//
//	s3://[ACCESS:SECRET@]BUCKET[/PREFIX]?endpoint=http://HOST:PORT&region=R[&part_size=BYTES][&redirect=DURATION]
//
// Credentials come from the URL, else from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
// Without endpoint the store is AWS S3 over HTTPS. redirect (e.g. 5m, at most 20m) turns on
// answering whole-blob GETs with a presigned URL.
func OpenS3(raw string) (*S3Store, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("s3 store URL %q: want s3://BUCKET[/PREFIX]?endpoint=…&region=…", redactURL(raw))
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint", "region", "part_size", "redirect":
		default:
			return nil, fmt.Errorf("s3 store URL: unknown parameter %q", k)
		}
	}
	endpoint := q.Get("endpoint")
	if endpoint == "" {
		endpoint = "https://s3.amazonaws.com"
	}
	ep, err := url.Parse(endpoint)
	if err != nil || (ep.Scheme != "http" && ep.Scheme != "https") || ep.Host == "" {
		return nil, fmt.Errorf("s3 store URL: endpoint %q is not an http(s) URL", endpoint)
	}
	s := &S3Store{bucket: u.Host, partSize: defaultPartSize}
	if p := strings.Trim(u.Path, "/"); p != "" {
		s.prefix = p + "/"
	}
	if v := q.Get("part_size"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < minPart || n > 5<<30 {
			return nil, fmt.Errorf("s3 store URL: part_size %q: want bytes between %d and %d", v, minPart, int64(5<<30))
		}
		s.partSize = n
	}
	if v := q.Get("redirect"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > maxRedirect {
			return nil, fmt.Errorf("s3 store URL: redirect %q: want a duration between 1s and %v", v, maxRedirect)
		}
		s.redirect = d
	}
	ak, sk := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if u.User != nil {
		ak = u.User.Username()
		sk, _ = u.User.Password()
	}
	if ak == "" || sk == "" {
		return nil, errors.New("s3 store: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put ACCESS:SECRET@ in the URL)")
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute, // a completion of a big object takes minutes
		ExpectContinueTimeout: time.Second,
		// Blobs are compressed already or disk images; gzip would cost CPU for nothing.
		DisableCompression: true,
	}
	c, err := minio.New(ep.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(ak, sk, ""),
		Secure:       ep.Scheme == "https",
		Region:       q.Get("region"),
		Transport:    tr,
		BucketLookup: minio.BucketLookupPath,
		// A store that is down fails a request in seconds, not after minutes of retries.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 store: %w", err)
	}
	s.core = minio.Core{Client: c}
	s.secure = ep.Scheme == "https"
	s.dialer = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	s.bufs.New = func() any { b := make([]byte, s.partSize); return &b }
	return s, nil
}

// redactURL drops credentials from a store URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func (s *S3Store) object(key string) string { return s.prefix + key }
func s3DataKey(id string) string            { return "data/" + id }
func s3TailKey(id string) string            { return "uploads/" + id + "/tail" }

// s3Err classifies an error of the S3 client: a missing key wraps ErrNotExist, no answer
// at all (refused, reset, timeout, 5xx) wraps ErrStoreUnavailable.
func s3Err(op, key string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("s3 %s %s: %w", op, key, err)
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey" || resp.Code == "NoSuchUpload" || resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket":
		return fmt.Errorf("s3 %s %s: %w (%v)", op, key, ErrNotExist, err)
	case resp.StatusCode == 0 || resp.StatusCode >= 500:
		return fmt.Errorf("s3 %s %s: %w: %v", op, key, ErrStoreUnavailable, err)
	}
	return fmt.Errorf("s3 %s %s: %w", op, key, err)
}

// Ping checks that the bucket answers.
func (s *S3Store) Ping(ctx context.Context) error {
	ok, err := s.core.BucketExists(ctx, s.bucket)
	if err != nil {
		return s3Err("ping", s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("s3 bucket %s does not exist: %w", s.bucket, ErrStoreUnavailable)
	}
	return nil
}

func (s *S3Store) Stat(ctx context.Context, key string) (int64, error) {
	info, err := s.core.StatObject(ctx, s.bucket, s.object(key), minio.StatObjectOptions{})
	if err != nil {
		return 0, s3Err("stat", key, err)
	}
	return info.Size, nil
}

// Open sends one ranged GET; its answer's status is known when Open returns. Over plain
// HTTP it is a presigned GET on a connection of its own (openRaw), so a copy to a client
// can move the bytes socket to socket (splice) instead of through the server's memory.
func (s *S3Store) Open(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if !s.secure && length != 0 {
		return s.openRaw(ctx, key, off, length)
	}
	var opt minio.GetObjectOptions
	if off > 0 || length >= 0 {
		end := int64(0) // SetRange(off, 0): from off to the end
		if length >= 0 {
			if length == 0 {
				return io.NopCloser(bytes.NewReader(nil)), nil
			}
			end = off + length - 1
		}
		if err := opt.SetRange(off, end); err != nil {
			return nil, fmt.Errorf("s3 get %s: %w", key, err)
		}
	}
	rc, _, _, err := s.core.GetObject(ctx, s.bucket, s.object(key), opt)
	if err != nil {
		return nil, s3Err("get", key, err)
	}
	return rc, nil
}

// RedirectURL presigns a GET of key when the store is configured to redirect.
func (s *S3Store) RedirectURL(ctx context.Context, key string) (string, bool, error) {
	if s.redirect == 0 {
		return "", false, nil
	}
	u, err := s.core.PresignedGetObject(ctx, s.bucket, s.object(key), s.redirect, nil)
	if err != nil {
		return "", false, s3Err("presign", key, err)
	}
	return u.String(), true, nil
}

// Remove deletes key. S3 answers a delete of a missing key with success, so a stat first
// tells whether anything went.
func (s *S3Store) Remove(ctx context.Context, key string) (bool, error) {
	if _, err := s.Stat(ctx, key); errors.Is(err, ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if err := s.core.RemoveObject(ctx, s.bucket, s.object(key), minio.RemoveObjectOptions{}); err != nil {
		return false, s3Err("delete", key, err)
	}
	return true, nil
}

// Walk lists committed objects (data/), staging tails (uploads/) and multipart uploads in
// progress.
func (s *S3Store) Walk(ctx context.Context, fn func(Entry) error) error {
	for obj := range s.core.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + "data/", Recursive: true}) {
		if obj.Err != nil {
			return s3Err("list", "data/", obj.Err)
		}
		key := strings.TrimPrefix(obj.Key, s.prefix)
		if err := fn(Entry{Key: key, Upload: strings.TrimPrefix(key, "data/"), Size: obj.Size, Modified: obj.LastModified}); err != nil {
			return err
		}
	}
	for obj := range s.core.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + "uploads/", Recursive: true}) {
		if obj.Err != nil {
			return s3Err("list", "uploads/", obj.Err)
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(obj.Key, s.prefix+"uploads/"), "/")
		if err := fn(Entry{Upload: id, Size: obj.Size, Modified: obj.LastModified}); err != nil {
			return err
		}
	}
	for mp := range s.core.ListIncompleteUploads(ctx, s.bucket, s.prefix+"data/", true) {
		if mp.Err != nil {
			return s3Err("list multipart uploads", "data/", mp.Err)
		}
		id := strings.TrimPrefix(mp.Key, s.prefix+"data/")
		if err := fn(Entry{Upload: id, Modified: mp.Initiated}); err != nil {
			return err
		}
	}
	return nil
}

// DropUpload aborts every multipart upload at data/<id> and removes the session's tail.
// A completed object at data/<id> is a commit's and stays.
func (s *S3Store) DropUpload(ctx context.Context, id string) error {
	obj := s.object(s3DataKey(id))
	for mp := range s.core.ListIncompleteUploads(ctx, s.bucket, obj, false) {
		if mp.Err != nil {
			return s3Err("list multipart uploads", s3DataKey(id), mp.Err)
		}
		if mp.Key != obj {
			continue
		}
		if err := s.core.AbortMultipartUpload(ctx, s.bucket, obj, mp.UploadID); err != nil && !errors.Is(s3Err("", "", err), ErrNotExist) {
			return s3Err("abort", s3DataKey(id), err)
		}
	}
	return s.removeTail(ctx, id)
}

func (s *S3Store) removeTail(ctx context.Context, id string) error {
	err := s.core.RemoveObject(ctx, s.bucket, s.object(s3TailKey(id)), minio.RemoveObjectOptions{})
	if err != nil && !errors.Is(s3Err("", "", err), ErrNotExist) {
		return s3Err("delete", s3TailKey(id), err)
	}
	return nil
}

// s3State is an S3 session's resume state, kept in the upload record.
type s3State struct {
	// MPU is the multipart upload at data/<id> ("" until the first part).
	MPU   string   `json:"mpu,omitempty"`
	Parts []s3Part `json:"parts,omitempty"`
	// Tail is how many bytes wait in uploads/<id>/tail.
	Tail int64 `json:"tail,omitempty"`
	// Single: the final append wrote the whole blob as one object at data/<id> (it fitted
	// in one part), so there is no multipart upload to complete.
	Single bool `json:"single,omitempty"`
	// Final: the final append is done; only Commit or Abort may follow.
	Final bool `json:"final,omitempty"`
}

type s3Part struct {
	N    int    `json:"n"`
	ETag string `json:"etag"`
	Size int64  `json:"size"`
}

func (s *S3Store) NewUpload(_ context.Context, id string) (UploadWriter, error) {
	if id == "" || strings.ContainsAny(id, "/") {
		return nil, fmt.Errorf("upload id %q is not a key component", id)
	}
	return &s3Upload{s: s, id: id}, nil
}

func (s *S3Store) ResumeUpload(_ context.Context, id string, state []byte, _ int64) (UploadWriter, error) {
	u := &s3Upload{s: s, id: id}
	if len(state) > 0 {
		if err := json.Unmarshal(state, &u.st); err != nil {
			return nil, fmt.Errorf("resume upload %s: %w", id, err)
		}
	}
	return u, nil
}

// s3Upload is one session's writer. Its state changes only when an append succeeds.
type s3Upload struct {
	s  *S3Store
	id string
	st s3State
}

func (u *s3Upload) State() ([]byte, error) {
	if u.st.MPU == "" && u.st.Tail == 0 && !u.st.Single {
		return nil, nil
	}
	return json.Marshal(u.st)
}

// Append streams r into parts: the tail left by the last append first, then r's bytes,
// one part buffer at a time while the previous part uploads. What remains at the end
// becomes a part when it is at least 5 MiB (or final), else the new tail.
func (u *s3Upload) Append(ctx context.Context, r io.Reader, max int64, final bool, sinks ...io.Writer) (int64, error) {
	if u.st.Final {
		// The final chunk is in (a commit that failed after it, or a client retrying its
		// closing PUT): an empty body changes nothing, more bytes cannot be taken.
		var one [1]byte
		if n, _ := io.ReadFull(r, one[:]); n == 0 && final {
			return 0, nil
		}
		return 0, fmt.Errorf("upload %s: bytes after its final chunk: %w", u.id, ErrRangeInvalid)
	}
	a := &s3Append{u: u, st: u.st, ctx: ctx}
	a.st.Parts = append([]s3Part(nil), u.st.Parts...)
	n, err := a.run(r, max, final, sinks)
	if err != nil {
		a.cleanup()
		return 0, err
	}
	u.st = a.st
	return n, nil
}

// s3Append is the work of one Append: a copy of the state it advances, and at most one part
// upload in flight.
type s3Append struct {
	u        *s3Upload
	st       s3State
	ctx      context.Context
	inflight chan error
	newMPU   bool // this append started the multipart upload (abort it on failure)
	bufs     []*[]byte
}

func (a *s3Append) buf() *[]byte {
	b := a.u.s.bufs.Get().(*[]byte)
	a.bufs = append(a.bufs, b)
	return b
}

func (a *s3Append) release() {
	for _, b := range a.bufs {
		a.u.s.bufs.Put(b)
	}
	a.bufs = nil
}

func (a *s3Append) run(r io.Reader, max int64, final bool, sinks []io.Writer) (int64, error) {
	defer a.release()
	cur, spare := a.buf(), a.buf()
	fillN := 0
	if a.st.Tail > 0 {
		if err := a.readTail((*cur)[:a.st.Tail]); err != nil {
			return 0, err
		}
		fillN = int(a.st.Tail)
	}
	var total int64
	for {
		m, rerr := fill(r, (*cur)[fillN:])
		if max >= 0 && total+int64(m) > max {
			m = int(max - total)
			rerr = ErrTooLarge
		}
		for _, w := range sinks {
			w.Write((*cur)[fillN : fillN+m])
		}
		fillN += m
		total += int64(m)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			a.wait()
			if errors.Is(rerr, ErrTooLarge) {
				return 0, rerr
			}
			return 0, fmt.Errorf("%w: %v", ErrIncomplete, rerr)
		}
		if rerr == nil { // the buffer is full: one part
			if err := a.startPart((*cur)[:fillN]); err != nil {
				return 0, err
			}
			cur, spare = spare, cur
			fillN = 0
			continue
		}
		break // r ended
	}
	rest := (*cur)[:fillN]
	switch {
	case final && a.st.MPU == "" && len(a.st.Parts) == 0:
		if err := a.wait(); err != nil {
			return 0, err
		}
		if err := a.putSingle(rest); err != nil {
			return 0, err
		}
		a.st.Single = true
	case final || len(rest) >= minPart:
		if len(rest) > 0 {
			if err := a.startPart(rest); err != nil {
				return 0, err
			}
		}
		a.st.Tail = 0
	case total == 0: // nothing new: the tail stays as it is
	case len(rest) == 0:
		a.st.Tail = 0
	default:
		if err := a.wait(); err != nil {
			return 0, err
		}
		if err := a.putTail(rest); err != nil {
			return 0, err
		}
		a.st.Tail = int64(len(rest))
	}
	if err := a.wait(); err != nil {
		return 0, err
	}
	a.st.Final = final
	return total, nil
}

func (a *s3Append) readTail(p []byte) error {
	rc, err := a.u.s.Open(a.ctx, s3TailKey(a.u.id), 0, int64(len(p)))
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, p); err != nil {
		return s3Err("read", s3TailKey(a.u.id), err)
	}
	return nil
}

func (a *s3Append) putTail(p []byte) error {
	s := a.u.s
	_, err := s.core.PutObject(a.ctx, s.bucket, s.object(s3TailKey(a.u.id)), bytes.NewReader(p), int64(len(p)), "", "",
		minio.PutObjectOptions{DisableContentSha256: true})
	return s3Err("put", s3TailKey(a.u.id), err)
}

func (a *s3Append) putSingle(p []byte) error {
	s := a.u.s
	key := s3DataKey(a.u.id)
	_, err := s.core.PutObject(a.ctx, s.bucket, s.object(key), bytes.NewReader(p), int64(len(p)), "", "",
		minio.PutObjectOptions{DisableContentSha256: true})
	return s3Err("put", key, err)
}

// startPart waits for the part in flight, then uploads p as the next part in the
// background. p's buffer is not touched again until wait returns.
func (a *s3Append) startPart(p []byte) error {
	if err := a.wait(); err != nil {
		return err
	}
	s := a.u.s
	key := s3DataKey(a.u.id)
	if a.st.MPU == "" {
		id, err := s.core.NewMultipartUpload(a.ctx, s.bucket, s.object(key), minio.PutObjectOptions{})
		if err != nil {
			return s3Err("create multipart upload", key, err)
		}
		a.st.MPU, a.newMPU = id, true
	}
	n := len(a.st.Parts) + 1
	if n > maxParts {
		return fmt.Errorf("upload %s: more than %d parts: %w", a.u.id, maxParts, ErrTooLarge)
	}
	a.st.Parts = append(a.st.Parts, s3Part{N: n, Size: int64(len(p))})
	idx := len(a.st.Parts) - 1
	a.inflight = make(chan error, 1)
	go func() {
		part, err := s.core.PutObjectPart(a.ctx, s.bucket, s.object(key), a.st.MPU, n, bytes.NewReader(p), int64(len(p)),
			minio.PutObjectPartOptions{DisableContentSha256: true})
		if err == nil {
			a.st.Parts[idx].ETag = part.ETag
		}
		a.inflight <- s3Err("upload part "+strconv.Itoa(n)+" of", key, err)
	}()
	return nil
}

// wait returns the result of the part in flight, if any.
func (a *s3Append) wait() error {
	if a.inflight == nil {
		return nil
	}
	err := <-a.inflight
	a.inflight = nil
	return err
}

// cleanup runs after a failed append: the recorded state stays as it was, so a multipart
// upload this append started would be known to nobody.
func (a *s3Append) cleanup() {
	a.wait()
	if a.newMPU {
		s := a.u.s
		ctx := context.WithoutCancel(a.ctx)
		if err := s.core.AbortMultipartUpload(ctx, s.bucket, s.object(s3DataKey(a.u.id)), a.st.MPU); err != nil {
			// GC finds it (ListMultipartUploads) once the session is gone.
			_ = err
		}
	}
}

// Commit completes the multipart upload where it is (or takes the single object the final
// append wrote), then drops the tail. No byte is copied or read.
func (u *s3Upload) Commit(ctx context.Context, _ digest.Digest) (string, error) {
	key := s3DataKey(u.id)
	if !u.st.Final {
		return "", fmt.Errorf("commit upload %s before its final chunk", u.id)
	}
	if !u.st.Single {
		parts := make([]minio.CompletePart, len(u.st.Parts))
		for i, p := range u.st.Parts {
			parts[i] = minio.CompletePart{PartNumber: p.N, ETag: p.ETag}
		}
		if _, err := u.s.core.CompleteMultipartUpload(ctx, u.s.bucket, u.s.object(key), u.st.MPU, parts, minio.PutObjectOptions{}); err != nil {
			return "", s3Err("complete multipart upload", key, err)
		}
	}
	if err := u.s.removeTail(ctx, u.id); err != nil {
		// The blob is committed; a leftover tail is staging GC removes.
		_ = err
	}
	u.st = s3State{}
	return key, nil
}

// Abort drops the multipart upload, the tail, and a single object a final append wrote.
func (u *s3Upload) Abort(ctx context.Context) error {
	s := u.s
	key := s3DataKey(u.id)
	if u.st.MPU != "" {
		if err := s.core.AbortMultipartUpload(ctx, s.bucket, s.object(key), u.st.MPU); err != nil && !errors.Is(s3Err("", "", err), ErrNotExist) {
			return s3Err("abort", key, err)
		}
	}
	if u.st.Single {
		if err := s.core.RemoveObject(ctx, s.bucket, s.object(key), minio.RemoveObjectOptions{}); err != nil {
			return s3Err("delete", key, err)
		}
	}
	if err := s.removeTail(ctx, u.id); err != nil {
		return err
	}
	u.st = s3State{}
	return nil
}

// openRaw GETs key with a presigned URL (signed locally) over a connection of its own and
// returns the body, whose WriteTo hands the connection itself to the destination's
// ReadFrom: from an S3 socket to a client socket the kernel splices.
func (s *S3Store) openRaw(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	u, err := s.core.PresignedGetObject(ctx, s.bucket, s.object(key), 15*time.Minute, nil)
	if err != nil {
		return nil, s3Err("presign", key, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("s3 get %s: %w", key, err)
	}
	if off > 0 || length > 0 { // no Range for a whole object: an empty one has no byte 0
		rng := fmt.Sprintf("bytes=%d-", off)
		if length > 0 {
			rng += strconv.FormatInt(off+length-1, 10)
		}
		req.Header.Set("Range", rng)
	}
	conn, err := s.dialer.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("s3 get %s: %w: %v", key, ErrStoreUnavailable, err)
	}
	// The answer's head must come promptly; the body then streams at the client's pace.
	conn.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReaderSize(conn, 32<<10)
	var resp *http.Response
	if err = req.Write(conn); err == nil {
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("s3 get %s: %w: %v", key, ErrStoreUnavailable, err)
	}
	conn.SetDeadline(time.Time{})
	switch {
	case resp.StatusCode == http.StatusNotFound:
		conn.Close()
		return nil, fmt.Errorf("s3 get %s: %w", key, ErrNotExist)
	case resp.StatusCode >= 500:
		conn.Close()
		return nil, fmt.Errorf("s3 get %s: %w: %s", key, ErrStoreUnavailable, resp.Status)
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent,
		resp.ContentLength < 0, len(resp.TransferEncoding) > 0:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		conn.Close()
		return nil, fmt.Errorf("s3 get %s: %s: %s", key, resp.Status, bytes.TrimSpace(body))
	}
	if err := checkRange(resp, off, length); err != nil {
		// A proxy or store that ignored the Range would have the client read the wrong
		// bytes at the right offset.
		conn.Close()
		return nil, fmt.Errorf("s3 get %s: %w: %v", key, ErrStoreUnavailable, err)
	}
	return &rawBody{conn: conn, br: br, left: resp.ContentLength}, nil
}

// checkRange reports whether resp answers a GET of length bytes from off (length < 0: to
// the end; no Range was sent for a whole object): a 206 must start at off and hold no more
// than asked, a 200 must be the whole object.
func checkRange(resp *http.Response, off, length int64) error {
	if resp.StatusCode == http.StatusOK {
		if off > 0 || (length > 0 && resp.ContentLength > length) {
			return fmt.Errorf("asked for %d bytes from %d, answered %s with the whole object (%d bytes)", length, off, resp.Status, resp.ContentLength)
		}
		return nil
	}
	cr := resp.Header.Get("Content-Range")
	var first, last int64
	if _, err := fmt.Sscanf(cr, "bytes %d-%d/", &first, &last); err != nil {
		return fmt.Errorf("206 with Content-Range %q", cr)
	}
	if first != off || last < first || resp.ContentLength != last-first+1 || (length > 0 && last-first+1 > length) {
		return fmt.Errorf("asked for %d bytes from %d, answered Content-Range %q, %d bytes", length, off, cr, resp.ContentLength)
	}
	return nil
}

// rawBody is an identity-encoded response body read straight off its connection.
type rawBody struct {
	conn net.Conn
	br   *bufio.Reader // holds what was read past the head
	left int64
}

func (b *rawBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if err == io.EOF && b.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// WriteTo sends what the head's read buffered, then the rest from the connection itself,
// so a destination with ReadFrom (a net/http response on TCP) splices it.
func (b *rawBody) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if n := min(int64(b.br.Buffered()), b.left); n > 0 {
		m, err := io.CopyN(w, b.br, n)
		total += m
		b.left -= m
		if err != nil {
			return total, err
		}
	}
	lr := &io.LimitedReader{R: b.conn, N: b.left}
	m, err := io.Copy(w, lr)
	total += m
	b.left -= m
	if err == nil && b.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return total, err
}

func (b *rawBody) Close() error { return b.conn.Close() }

// Describe names the bucket, prefix and endpoint: never the credentials.
func (s *S3Store) Describe() (string, map[string]any) {
	return "s3", map[string]any{"bucket": s.bucket, "prefix": s.prefix,
		"endpoint": s.core.EndpointURL().Scheme + "://" + s.core.EndpointURL().Host}
}
