package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/xloud/xloud-image/internal/testenv"
)

// backends are the metadata stores and blob stores a server can run on; subtests carry these
// names: the metadata store, then "-s3" when blobs go to an S3 store (a real versitygw)
// instead of the data directory.
var backends = []string{"embedded", "redis", "embedded-s3", "redis-s3"}

// startBackend starts a fresh server on the named backend (with a private redis-server for
// "redis", a private versitygw for "-s3"). When the test fails, the server's log is printed.
func startBackend(t *testing.T, backend string, args ...string) *testenv.Server {
	t.Helper()
	opt := testenv.ServerOptions{Args: args}
	metaBackend, blobs, _ := strings.Cut(backend, "-")
	switch blobs {
	case "":
	case "s3":
		s3 := testenv.StartS3(t)
		opt.Args = append([]string{"--store", "s3=" + s3.URL(s3.Bucket("xloud"), "blobs")}, opt.Args...)
	default:
		t.Fatalf("unknown blob store %q", blobs)
	}
	switch metaBackend {
	case "embedded":
	case "redis":
		opt.RedisURL = testenv.StartRedis(t)
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	srv := testenv.StartServer(t, opt)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log (%s):\n%s", backend, tail(srv.Log(), 200))
		}
	})
	return srv
}

// eachBackend runs f in parallel subtests, one per metadata backend, each with its own server.
func eachBackend(t *testing.T, f func(t *testing.T, srv *testenv.Server)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			f(t, startBackend(t, b))
		})
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"…"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// tool runs one invocation of an external client.
type tool struct {
	Path string   // binary
	Dir  string   // working directory; empty: a fresh temp dir (never the package directory)
	Env  []string // added to the environment
	// Stdin is what the tool reads on standard input (a password for --password-stdin).
	Stdin string
}

// run runs the tool and returns stdout and stderr; err is non-nil when it exits non-zero or
// runs for more than two minutes.
func (c tool) run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Path, args...)
	cmd.Dir = c.Dir
	if cmd.Dir == "" {
		cmd.Dir = t.TempDir()
	}
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdin = strings.NewReader(c.Stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	err = cmd.Run()
	t.Logf("$ %s %s  (%.2fs)", filepath.Base(c.Path), strings.Join(args, " "), time.Since(start).Seconds())
	return o.String(), e.String(), err
}

// must runs the tool and fails the test when it does not succeed; it returns stdout.
func (c tool) must(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := c.run(t, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(c.Path),
			strings.Join(args, " "), err, tail(out, 60), tail(errOut, 60))
	}
	return out
}

// mustFail runs the tool and fails the test when it succeeds; it returns stdout+stderr.
func (c tool) mustFail(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := c.run(t, args...)
	if err == nil {
		t.Fatalf("%s %s succeeded, want failure\nstdout:\n%s\nstderr:\n%s", filepath.Base(c.Path),
			strings.Join(args, " "), tail(out, 60), tail(errOut, 60))
	}
	return out + errOut
}

// randomBytes returns n pseudo-random bytes (a fresh seed each run).
func randomBytes(n int) []byte {
	b := make([]byte, n)
	randomFill(b)
	return b
}

func randomFill(b []byte) {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], rand.Uint64())
	binary.LittleEndian.PutUint64(seed[8:], rand.Uint64())
	_, _ = rand.NewChaCha8(seed).Read(b)
}

// writeRandomFile writes size random bytes to path, streaming, and returns their digest.
func writeRandomFile(t *testing.T, path string, size int64) digest.Digest {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		randomFill(buf[:n])
		_, _ = h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
}

// writeFile writes data to path, creating parent directories.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fileDigest returns the sha256 digest and size of a file.
func fileDigest(t *testing.T, path string) (digest.Digest, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil))), n
}

// requireSameFile fails unless the file at got has the digest and size of want.
func requireSameFile(t *testing.T, got string, want digest.Digest, wantSize int64) {
	t.Helper()
	d, n := fileDigest(t, got)
	if d != want || n != wantSize {
		t.Fatalf("%s: got %s (%d bytes), want %s (%d bytes)", got, d, n, want, wantSize)
	}
}
