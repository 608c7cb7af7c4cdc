package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestDebugAddr: --debug-addr serves Go's pprof handlers on its own listener (a CPU profile
// included), never the command line (it holds secrets), and not on the API listeners; an address that
// cannot be listened on stops the start with an error naming it.
func TestDebugAddr(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	srv := testenv.StartServer(t, testenv.ServerOptions{Args: []string{"--auth", "none", "--debug-addr", addr}})
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + addr + "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("goroutines on the debug listener: %d %q", code, body)
	}
	// The command line holds secrets (passwords, store keys): never served.
	if code, body := get("http://" + addr + "/debug/pprof/cmdline"); code == 200 || strings.Contains(body, "--auth") {
		t.Errorf("cmdline on the debug listener: %d %q", code, body)
	}
	if code, body := get("http://" + addr + "/debug/pprof/profile?seconds=1"); code != 200 || len(body) == 0 {
		t.Errorf("CPU profile: %d, %d bytes", code, len(body))
	}
	for _, base := range []string{srv.RegistryAddr, srv.APIAddr} {
		if code, _ := get("http://" + base + "/debug/pprof/"); code == 200 {
			t.Errorf("pprof answered on the API listener %s", base)
		}
	}

	// The address is taken (by the server above): the start fails and says why.
	dir := filepath.Join(t.TempDir(), "data")
	_, stderr, code := run(t, nil, "serve", "--auth", "none", "--data-dir", dir,
		"--registry-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--debug-addr", addr)
	if code == 0 || !strings.Contains(stderr, "listen debug on "+addr) {
		t.Errorf("serve with a taken --debug-addr: exit %d, stderr %q", code, stderr)
	}
}
