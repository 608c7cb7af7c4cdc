package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/xloud-image once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "xloud-image-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "xloud-image")
		// -buildvcs=auto overrides a GOFLAGS=-buildvcs=false of the machine, so the binary
		// says which revision it is, as `make build` stamps it.
		cmd := exec.Command("go", "build", "-buildvcs=auto", "-o", binPath, "./cmd/xloud-image")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Server is a running xloud-image serve process on loopback ports.
type Server struct {
	t            testing.TB
	Args         []string // extra flags
	DataDir      string
	RegistryAddr string // host:port
	APIAddr      string
	cmd          *exec.Cmd
	log          *SyncBuffer
	// health and scheme are how readiness is checked: plain HTTP unless StartTLSServer.
	health *http.Client
	scheme string
	mu     sync.Mutex
}

// ServerOptions choose how the server runs.
type ServerOptions struct {
	RedisURL string   // empty: embedded store
	DataDir  string   // empty: a fresh temp dir
	Args     []string // extra flags
}

// StartServer starts xloud-image serve with --auth none on free loopback ports and waits for
// /healthz. The server is killed when the test ends.
func StartServer(t testing.TB, opt ServerOptions) *Server {
	t.Helper()
	s := &Server{t: t, DataDir: opt.DataDir}
	if s.DataDir == "" {
		s.DataDir = filepath.Join(t.TempDir(), "data")
	}
	s.Args = append([]string{"--auth", "none"}, opt.Args...)
	if opt.RedisURL != "" {
		s.Args = append(s.Args, "--redis-url", opt.RedisURL)
	}
	s.Start()
	t.Cleanup(func() { s.Stop() })
	return s
}

// Start (re)starts the process on new free ports. A port found free can be taken by another
// test's process before the server binds it; the server then exits naming it, and Start
// tries again on other ports.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 1; ; attempt++ {
		last, portTaken := s.startOnce()
		if last == nil {
			return
		}
		if !portTaken || attempt == 5 {
			s.t.Fatalf("server did not become healthy (%v); log:\n%s", last, s.log.String())
		}
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// startOnce starts the process on free ports and waits until both listeners answer; it
// returns the last error when they did not, and whether the server found a port taken.
func (s *Server) startOnce() (last error, portTaken bool) {
	ports := FreePorts(s.t, 2) // distinct: two FreePort calls may return the same port
	s.RegistryAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	s.APIAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	args := append([]string{"serve", "--data-dir", s.DataDir,
		"--registry-addr", s.RegistryAddr, "--api-addr", s.APIAddr}, s.Args...)
	s.cmd = exec.Command(Binary(s.t), args...)
	s.log = &SyncBuffer{}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start server: %v", err)
	}
	client, scheme := s.health, s.scheme
	if client == nil {
		client, scheme = http.DefaultClient, "http"
	}
	// Both listeners open one after the other: the server is ready when both answer.
	pending := []string{s.RegistryAddr, s.APIAddr}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		if strings.Contains(s.log.String(), "bind: address already in use") {
			return fmt.Errorf("a port was taken before the server bound it"), true
		}
		resp, err := client.Get(scheme + "://" + pending[0] + "/healthz")
		if err != nil {
			last = err
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("%s/healthz: %s", pending[0], resp.Status)
			continue
		}
		if pending = pending[1:]; len(pending) == 0 {
			return nil, false
		}
	}
	return last, false
}

// URL is the Registry API base URL.
func (s *Server) URL() string { return "http://" + s.RegistryAddr }

// Kill stops the server with SIGKILL, as a crash would.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// Stop stops the server with SIGTERM and waits for it.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
		s.cmd = nil
	}
}

// Log returns what the server printed so far.
func (s *Server) Log() string { return s.log.String() }

// SyncBuffer is a bytes.Buffer that writers on other goroutines (a server's output, a
// logger) and the test can share.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// RequireTool fails the test when an external client is not installed: tests never skip for
// a missing tool (scripts/install-deps.sh installs them all).
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gobin := filepath.Join(os.Getenv("HOME"), "go", "bin", name)
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gobin = filepath.Join(string(bytes.TrimSpace(out)), "bin", name)
	}
	if _, err := os.Stat(gobin); err == nil {
		return gobin
	}
	t.Fatalf("%s is not installed: run scripts/install-deps.sh", name)
	return ""
}

// PID is the server process's id (0 when stopped), for reading /proc/PID.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// JSONLines parses every line of a JSON log (the server's, or a test's slog output), failing
// the test on a line that is not JSON: every log line must be.
func JSONLines(t testing.TB, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(logs) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, rec)
	}
	return out
}
