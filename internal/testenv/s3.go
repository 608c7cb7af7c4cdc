package testenv

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// S3 is a real S3 server for tests: versitygw over a temporary directory (each directory
// under Root is a bucket), on a free loopback port, with its access log in AccessLog.
type S3 struct {
	Addr      string // host:port
	AccessKey string
	SecretKey string
	Root      string
	AccessLog string

	t    testing.TB
	bin  string
	meta string
	cmd  *exec.Cmd
	logf *os.File
}

// StartS3 starts versitygw for the life of the test. A missing versitygw fails the test:
// scripts/install-deps.sh installs it.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	dir := t.TempDir()
	s := &S3{
		AccessKey: "xloudtest", SecretKey: "xloudtestsecret",
		Root: filepath.Join(dir, "root"), meta: filepath.Join(dir, "meta"),
		AccessLog: filepath.Join(dir, "access.log"),
		t:         t, bin: RequireTool(t, "versitygw"),
	}
	for _, d := range []string{s.Root, s.meta} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	for attempt := 0; attempt < 5 && s.cmd == nil; attempt++ {
		s.Addr = "127.0.0.1:" + strconv.Itoa(FreePort(t))
		if !s.start() {
			s.Stop()
		}
	}
	if s.cmd == nil {
		t.Fatal("versitygw did not start")
	}
	t.Cleanup(s.Stop)
	return s
}

// start runs versitygw on s.Addr and reports whether it answers.
func (s *S3) start() bool {
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(s.Root), "versitygw.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "--port", s.Addr, "--quiet", "--access-log", s.AccessLog,
		"posix", "--sidecar", s.meta, s.Root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start versitygw: %v", err)
	}
	s.cmd, s.logf = cmd, logf
	return waitTCP(s.Addr, 10*time.Second)
}

// Stop kills the server (a store going away mid-request); Restart brings it back on the
// same port and directories.
func (s *S3) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.logf.Close()
	s.cmd = nil
}

// Restart starts the server again after Stop, on the same address.
func (s *S3) Restart() {
	s.t.Helper()
	for i := 0; i < 50; i++ {
		if s.start() {
			return
		}
		s.Stop()
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("versitygw did not restart on %s", s.Addr)
}

// Bucket creates a bucket (a directory under Root) and returns its name.
func (s *S3) Bucket(name string) string {
	s.t.Helper()
	if err := os.MkdirAll(filepath.Join(s.Root, name), 0o750); err != nil {
		s.t.Fatal(err)
	}
	return name
}

// URL is the --store URL of bucket/prefix on this server, credentials included.
func (s *S3) URL(bucket, prefix string, params ...string) string {
	u := url.URL{Scheme: "s3", User: url.UserPassword(s.AccessKey, s.SecretKey), Host: bucket, Path: "/" + prefix}
	q := url.Values{"endpoint": {"http://" + s.Addr}, "region": {"us-east-1"}}
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Objects lists the committed objects of bucket (paths relative to the bucket, staging of
// versitygw itself left out).
func (s *S3) Objects(bucket string) []string {
	s.t.Helper()
	var out []string
	root := filepath.Join(s.Root, bucket)
	err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if e.IsDir() {
			if strings.HasPrefix(rel, ".sgwtmp") {
				return filepath.SkipDir
			}
			return nil
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// Requests counts the access-log lines whose text holds each of words (an operation
// name such as "CopyObject", a key).
func (s *S3) Requests(words ...string) int {
	s.t.Helper()
	b, err := os.ReadFile(s.AccessLog)
	if err != nil && !os.IsNotExist(err) {
		s.t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		ok := line != ""
		for _, w := range words {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			n++
		}
	}
	return n
}

// String names the server in test logs.
func (s *S3) String() string { return fmt.Sprintf("versitygw at %s", s.Addr) }
