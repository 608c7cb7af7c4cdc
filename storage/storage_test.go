package storage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/internal/testenv"
	"github.com/xloud/xloud-image/storage"
	"github.com/xloud/xloud-image/storage/meta"
)

var ctx = context.Background()

// env is a store over a data dir; reopen simulates a restart.
type env struct {
	t     *testing.T
	dir   string
	redis string
	m     meta.Store
	s     *storage.Store
	files *storage.Files
}

func (e *env) open() {
	e.t.Helper()
	files, err := storage.OpenFiles(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.redis != "" {
		e.m, err = meta.OpenRedis(ctx, e.redis, fmt.Sprintf("t%d:", len(e.dir)))
	} else {
		e.m, err = meta.OpenBolt(filepath.Join(e.dir, "meta.db"), time.Second)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.s, e.files = storage.New(files, e.m), files
}

func (e *env) reopen() { e.m.Close(); e.open() }

// forBackends runs fn against a fresh store on each metadata backend.
func forBackends(t *testing.T, fn func(t *testing.T, e *env)) {
	redisURL := testenv.StartRedis(t)
	for _, backend := range []string{"bolt", "redis"} {
		t.Run(backend, func(t *testing.T) {
			e := &env{t: t, dir: t.TempDir()}
			if backend == "redis" {
				e.redis = redisURL
			}
			e.open()
			t.Cleanup(func() { e.m.Close() })
			fn(t, e)
		})
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// failingReader yields its data, then an error, like a client that hangs up.
type failingReader struct{ r io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func TestUploadSurvivesRestartAndFailedChunks(t *testing.T) {
	forBackends(t, func(t *testing.T, e *env) {
		content := randomBytes(3<<20 + 123)
		d := digest.FromBytes(content)
		u, err := e.s.StartUpload(ctx, "a/b", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.AppendUpload(ctx, "a/b", u.ID, 0, bytes.NewReader(content[:1<<20]), -1); err != nil {
			t.Fatal(err)
		}
		// A chunk that breaks off midway changes nothing.
		_, err = e.s.AppendUpload(ctx, "a/b", u.ID, 1<<20, failingReader{bytes.NewReader(content[1<<20 : 2<<20])}, -1)
		if !errors.Is(err, storage.ErrIncomplete) {
			t.Fatalf("broken chunk: %v, want ErrIncomplete", err)
		}
		// So does one over the size limit.
		_, err = e.s.AppendUpload(ctx, "a/b", u.ID, 1<<20, bytes.NewReader(content[1<<20:]), 1000)
		if !errors.Is(err, storage.ErrTooLarge) {
			t.Fatalf("oversized chunk: %v, want ErrTooLarge", err)
		}
		e.reopen()
		got, err := e.s.GetUpload(ctx, "a/b", u.ID)
		if err != nil || got.Offset != 1<<20 {
			t.Fatalf("after restart: %+v %v", got, err)
		}
		if st, _ := os.Stat(e.files.UploadPath(u.ID)); st.Size() != 1<<20 {
			t.Fatalf("upload file is %d bytes, want %d", st.Size(), 1<<20)
		}
		// Out of order.
		if _, err := e.s.AppendUpload(ctx, "a/b", u.ID, 0, bytes.NewReader(content[:10]), -1); !errors.Is(err, storage.ErrRangeInvalid) {
			t.Fatalf("out of order: %v", err)
		}
		if _, err := e.s.AppendUpload(ctx, "a/b", u.ID, -1, bytes.NewReader(content[1<<20:2<<20]), -1); err != nil {
			t.Fatal(err)
		}
		n, err := e.s.CommitUpload(ctx, "a/b", u.ID, d, 2<<20, bytes.NewReader(content[2<<20:]), -1)
		if err != nil || n != int64(len(content)) {
			t.Fatalf("commit: %d %v", n, err)
		}
		f, size, err := e.s.OpenBlob(ctx, "a/b", d)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		if size != int64(len(content)) || !bytes.Equal(b, content) {
			t.Fatal("committed blob differs")
		}
		if _, err := os.Stat(e.files.UploadPath(u.ID)); !os.IsNotExist(err) {
			t.Fatal("upload file left after commit")
		}
		if _, err := e.s.GetUpload(ctx, "a/b", u.ID); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Fatalf("session after commit: %v", err)
		}
	})
}

func TestDedupeAcrossRepositories(t *testing.T) {
	forBackends(t, func(t *testing.T, e *env) {
		content := randomBytes(1000)
		d := digest.FromBytes(content)
		for _, repo := range []string{"x/one", "y/two"} {
			push(t, e.s, repo, content)
		}
		n := 0
		filepath.Walk(filepath.Join(e.dir, "blobs"), func(_ string, fi os.FileInfo, _ error) error {
			if fi != nil && !fi.IsDir() {
				n++
			}
			return nil
		})
		if n != 1 {
			t.Fatalf("%d blob files for one content, want 1", n)
		}
		if _, err := e.s.StatBlob(ctx, "y/two", d); err != nil {
			t.Fatal(err)
		}
	})
}

func push(t testing.TB, s *storage.Store, repo string, content []byte) digest.Digest {
	t.Helper()
	d, err := tryPush(s, repo, content)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func tryPush(s *storage.Store, repo string, content []byte) (digest.Digest, error) {
	d := digest.FromBytes(content)
	u, err := s.StartUpload(ctx, repo, "")
	if err != nil {
		return d, err
	}
	_, err = s.CommitUpload(ctx, repo, u.ID, d, 0, bytes.NewReader(content), -1)
	return d, err
}

func putManifest(s *storage.Store, repo, tag string, blobs ...digest.Digest) (digest.Digest, error) {
	content := []byte(fmt.Sprintf(`{"schemaVersion":2,"blobs":%q,"tag":%q}`, blobs, tag))
	d := digest.FromBytes(content)
	return d, s.PutManifest(ctx, repo, storage.ManifestPut{
		Digest: d, MediaType: "application/vnd.oci.image.manifest.v1+json", Content: content,
		Required: blobs, Tags: []string{tag},
	})
}

func TestGarbageCollection(t *testing.T) {
	forBackends(t, func(t *testing.T, e *env) {
		now := time.Now()
		e.s.Now = func() time.Time { return now }
		kept := push(t, e.s, "g/repo", []byte("referenced layer"))
		loose := push(t, e.s, "g/repo", []byte("unreferenced layer"))
		md, err := putManifest(e.s, "g/repo", "v1", kept)
		if err != nil {
			t.Fatal(err)
		}
		stale, _ := e.s.StartUpload(ctx, "g/repo", "")

		// Within the grace period nothing goes.
		rep, err := e.s.CollectGarbage(ctx, storage.GCOptions{Grace: time.Hour, UploadMaxAge: time.Hour})
		if err != nil || len(rep.Blobs) != 0 || len(rep.Uploads) != 0 {
			t.Fatalf("gc within grace: %+v %v", rep, err)
		}
		now = now.Add(2 * time.Hour)
		// A dry run reports and removes nothing.
		rep, err = e.s.CollectGarbage(ctx, storage.GCOptions{DryRun: true, Grace: time.Hour, UploadMaxAge: time.Hour})
		if err != nil || len(rep.Blobs) != 1 || rep.Blobs[0] != loose || len(rep.Uploads) != 1 {
			t.Fatalf("dry run: %+v %v", rep, err)
		}
		if _, err := e.s.StatBlob(ctx, "g/repo", loose); err != nil {
			t.Fatal("dry run removed a blob")
		}
		rep, err = e.s.CollectGarbage(ctx, storage.GCOptions{Grace: time.Hour, UploadMaxAge: time.Hour})
		if err != nil || len(rep.Blobs) != 1 || rep.Blobs[0] != loose || len(rep.Uploads) != 1 || rep.Uploads[0] != stale.ID {
			t.Fatalf("gc: %+v %v", rep, err)
		}
		if _, err := e.s.StatBlob(ctx, "g/repo", loose); !errors.Is(err, storage.ErrBlobUnknown) {
			t.Fatalf("collected blob still visible: %v", err)
		}
		if _, err := os.Stat(filepath.Join(e.dir, "blobs", "sha256", loose.Encoded()[:2], loose.Encoded())); !os.IsNotExist(err) {
			t.Fatal("collected blob file still on disk")
		}
		if _, err := e.s.StatBlob(ctx, "g/repo", kept); err != nil {
			t.Fatalf("referenced blob collected: %v", err)
		}
		if _, _, err := e.s.GetManifest(ctx, "g/repo", md); err != nil {
			t.Fatalf("manifest collected: %v", err)
		}
		// Once the manifest is deleted, its blobs and itself go on the next pass.
		if err := e.s.DeleteManifest(ctx, "g/repo", md); err != nil {
			t.Fatal(err)
		}
		rep, err = e.s.CollectGarbage(ctx, storage.GCOptions{Grace: time.Hour, UploadMaxAge: time.Hour})
		if err != nil || len(rep.Blobs) != 2 {
			t.Fatalf("gc after delete: %+v %v", rep, err)
		}
		repos, _, _ := e.s.Repositories(ctx, "", 0)
		if len(repos) != 0 {
			t.Fatalf("empty repository still listed: %v", repos)
		}
		// A blob pushed again after collection is stored anew.
		again := push(t, e.s, "g/repo", []byte("unreferenced layer"))
		if _, err := e.s.StatBlob(ctx, "g/repo", again); err != nil {
			t.Fatal(err)
		}
	})
}

// TestGCWhilePushing runs collection with no grace period in a loop while pushes go on. A
// push may lose its loose blob to GC (then its manifest is refused), but a manifest that was
// accepted must never name a blob that is gone.
func TestGCWhilePushing(t *testing.T) {
	forBackends(t, func(t *testing.T, e *env) {
		stop := make(chan struct{})
		var gcErr error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.s.CollectGarbage(ctx, storage.GCOptions{UploadMaxAge: time.Hour}); err != nil {
					gcErr = err
					return
				}
			}
		}()
		type accepted struct {
			repo  string
			md    digest.Digest
			blobs []digest.Digest
		}
		var mu sync.Mutex
		var ok []accepted
		refused := 0
		var pw sync.WaitGroup
		for w := 0; w < 4; w++ {
			pw.Add(1)
			go func(w int) {
				defer pw.Done()
				for i := 0; i < 15; i++ {
					repo := fmt.Sprintf("race/r%d", w)
					b1, err1 := tryPush(e.s, repo, []byte(fmt.Sprintf("shared layer %d", i%3)))
					b2, err2 := tryPush(e.s, repo, randomBytes(100))
					var md digest.Digest
					err := errors.Join(err1, err2)
					if err == nil {
						md, err = putManifest(e.s, repo, fmt.Sprintf("t%d", i), b1, b2)
					}
					mu.Lock()
					if err == nil {
						ok = append(ok, accepted{repo, md, []digest.Digest{b1, b2}})
					} else if errors.Is(err, storage.ErrBlobsMissing) || errors.Is(err, storage.ErrCollected) {
						refused++
					} else {
						t.Error(err)
					}
					mu.Unlock()
				}
			}(w)
		}
		pw.Wait()
		close(stop)
		wg.Wait()
		if gcErr != nil {
			t.Fatal(gcErr)
		}
		for _, a := range ok {
			if _, _, err := e.s.GetManifest(ctx, a.repo, a.md); err != nil {
				t.Fatalf("accepted manifest lost: %v", err)
			}
			for _, b := range a.blobs {
				if _, err := e.s.StatBlob(ctx, a.repo, b); err != nil {
					t.Fatalf("blob %s of accepted manifest %s gone: %v", b, a.md, err)
				}
			}
		}
		t.Logf("%d manifests accepted, %d refused because GC took a loose blob first (grace 0)", len(ok), refused)
		if len(ok) == 0 {
			t.Fatal("no manifest accepted")
		}
	})
}

// TestRecordsWithoutKeys: a data directory written before blob records named their store
// and key keeps working: reads, a session recorded without a store, dedupe and GC.
func TestRecordsWithoutKeys(t *testing.T) {
	forBackends(t, func(t *testing.T, e *env) {
		content := []byte("a layer from before stores had names")
		d := push(t, e.s, "old/repo", content)
		u, err := e.s.StartUpload(ctx, "old/repo", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.AppendUpload(ctx, "old/repo", u.ID, 0, bytes.NewReader([]byte("half")), -1); err != nil {
			t.Fatal(err)
		}
		// Rewrite both records as the old code wrote them: no store, no key.
		strip := func(key string) {
			err := e.m.Update(ctx, func(tx meta.Tx) error {
				b, err := tx.Get(key)
				if err != nil {
					return err
				}
				var m map[string]any
				if err := json.Unmarshal(b, &m); err != nil {
					return err
				}
				delete(m, "store")
				delete(m, "key")
				delete(m, "state")
				b, _ = json.Marshal(m)
				return tx.Put(key, b)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		strip("blob:" + d.String())
		strip("upload:" + u.ID)
		e.reopen()
		f, _, err := e.s.OpenBlob(ctx, "old/repo", d)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(f)
		f.Close()
		if !bytes.Equal(got, content) {
			t.Fatalf("old record reads %q", got)
		}
		whole := []byte("half and the rest")
		if _, err := e.s.CommitUpload(ctx, "old/repo", u.ID, digest.FromBytes(whole), 4, bytes.NewReader(whole[4:]), -1); err != nil {
			t.Fatalf("commit an old session: %v", err)
		}
		if push(t, e.s, "old/other", content) != d {
			t.Fatal("digest changed")
		}
		now := time.Now().Add(2 * time.Hour)
		e.s.Now = func() time.Time { return now }
		if err := e.s.DeleteBlob(ctx, "old/repo", d); err != nil {
			t.Fatal(err)
		}
		if err := e.s.DeleteBlob(ctx, "old/other", d); err != nil {
			t.Fatal(err)
		}
		rep, err := e.s.CollectGarbage(ctx, storage.GCOptions{Grace: time.Hour, UploadMaxAge: time.Hour})
		if err != nil || !slices.Contains(rep.Blobs, d) {
			t.Fatalf("gc of an old record: %+v %v", rep, err)
		}
		if _, err := os.Stat(filepath.Join(e.dir, "blobs", "sha256", d.Encoded()[:2], d.Encoded())); !os.IsNotExist(err) {
			t.Fatalf("old blob file still there: %v", err)
		}
	})
}
