//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// server is one registry (or the bare file server) running as a child process on loopback.
type server struct {
	name    string
	base    string // http://127.0.0.1:PORT
	apiBase string // xloud-image's API port (the Image API), http://127.0.0.1:PORT
	dataDir string
	cmd     *exec.Cmd
	log     *os.File
	exited  chan struct{}
}

// freePort asks the kernel for a loopback port nobody listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startProcess runs bin with args (and env added to ours), logging to logPath, and waits
// until probe answers 200.
func startProcess(ctx context.Context, name, logPath, probe string, env []string, bin string, args ...string) (*server, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), env...)
	// The servers die with us even if we are killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, log: log, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exited) }()
	if err := waitReady(ctx, s, probe); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s did not become ready (log: %s): %w", name, logPath, err)
	}
	return s, nil
}

func waitReady(ctx context.Context, s *server, probe string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return errors.New("exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(probe)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("timed out")
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM and, if the server is not gone in 15 s, SIGKILL.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.log.Close()
}

// startXloud runs xloud-image serve with open auth and its data under dir/<name>-data: the
// Registry API on one port, the Image API on another; extra flags (a --store) are added.
func startXloud(ctx context.Context, bin, dir, name string, extra ...string) (*server, error) {
	regPort, err := freePort()
	if err != nil {
		return nil, err
	}
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, name+"-data")
	base := fmt.Sprintf("http://127.0.0.1:%d", regPort)
	s, err := startProcess(ctx, name, filepath.Join(dir, name+".log"), base+"/v2/", nil, bin,
		append([]string{"serve", "--auth", "none", "--data-dir", data, "--log-level", "warn",
			"--registry-addr", fmt.Sprintf("127.0.0.1:%d", regPort),
			"--api-addr", fmt.Sprintf("127.0.0.1:%d", apiPort)}, extra...)...)
	if err != nil {
		return nil, err
	}
	s.base, s.dataDir = base, data
	s.apiBase = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	if err := waitReady(ctx, s, s.apiBase+"/healthz"); err != nil {
		s.stop()
		return nil, fmt.Errorf("xloud-image's API port did not become ready: %w", err)
	}
	return s, nil
}

// distConfig is Distribution's configuration: filesystem storage (which fsyncs at commit),
// deletes on, the in-memory blob descriptor cache, no access log, loopback only.
const distConfig = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:%d
  secret: regbench-not-secret
`

// distEnv turns off Distribution v3's OpenTelemetry tracing, on by default, which would
// otherwise cost it a span per request and an export attempt to localhost:4318
// (distribution/distribution#4270).
var distEnv = []string{"OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=none"}

// startDistribution runs Distribution's registry with its data under dir.
func startDistribution(ctx context.Context, bin, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "distribution-data")
	if err := os.MkdirAll(data, 0o750); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "distribution.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, distConfig, data, port), 0o640); err != nil {
		return nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	s, err := startProcess(ctx, "distribution", filepath.Join(dir, "distribution.log"), base+"/v2/", distEnv, bin, "serve", cfg)
	if err != nil {
		return nil, err
	}
	s.base, s.dataDir = base, data
	return s, nil
}

// serveFileCmd is the hidden sub-command that runs the bare file server: this same binary,
// in its own process like the registries.
const serveFileCmd = "serve-file"

// startFileServer runs the bare net/http server that answers every request with
// http.ServeContent of path.
func startFileServer(ctx context.Context, dir, path string) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	s, err := startProcess(ctx, "net/http ServeContent", filepath.Join(dir, "fileserver.log"), base+"/healthz", nil, self,
		serveFileCmd, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-file", path)
	if err != nil {
		return nil, err
	}
	s.base = base
	return s, nil
}

// serveFile is the bare server: the least a Go server can do to send a file (sendfile via
// ServeContent over *os.File), the bound for a registry's blob GET.
func serveFile(args []string) error {
	fs := flag.NewFlagSet(serveFileCmd, flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	path := fs.String("file", "", "the file to serve")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/healthz") {
			return
		}
		f, err := os.Open(*path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, f)
	})
	return http.ListenAndServe(*addr, h)
}
