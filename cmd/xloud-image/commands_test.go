package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/xloud/xloud-image/internal/testenv"
)

// run runs the built binary with args (and env additions) and returns its stdout, stderr
// and exit code.
func run(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// mustNotExist fails when path was created.
func mustNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists (%v): a refused command created it", path, err)
	}
}

// TestHelpExitsZero: -h and --help print a command's help and exit 0 on every command,
// inspect's included.
func TestHelpExitsZero(t *testing.T) {
	for _, cmd := range []string{"serve", "gc", "purge", "inspect", "version"} {
		for _, h := range []string{"-h", "--help"} {
			out, errOut, code := run(t, nil, cmd, h)
			if code != 0 || !strings.Contains(out+errOut, "-h") && !strings.Contains(out+errOut, "usage") {
				t.Errorf("%s %s: exit %d\n%s%s", cmd, h, code, out, errOut)
			}
		}
	}
	_, errOut, _ := run(t, nil, "inspect", "--help")
	if !strings.Contains(errOut, "usage: xloud-image inspect [flags] FILE") {
		t.Errorf("inspect --help printed no help: %q", errOut)
	}
	_, errOut, _ = run(t, nil, "gc", "-h")
	if !strings.Contains(errOut, "-dry-run") || !strings.Contains(errOut, "-data-dir") {
		t.Errorf("gc -h lacks its flags: %q", errOut)
	}
}

// TestVersionPrintsBuild: `version` prints the module version and the VCS revision stamped in
// the binary (as `go version -m` reads them), or says the revision is unknown.
func TestVersionPrintsBuild(t *testing.T) {
	out, errOut, code := run(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "xloud-image ") || !strings.Contains(out, " go1.") {
		t.Fatalf("version: exit %d %q %q", code, out, errOut)
	}
	info, err := exec.Command("go", "version", "-m", testenv.Binary(t)).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	want := []string{"revision unknown"}
	for _, line := range strings.Split(string(info), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "mod":
			want = append(want, "xloud-image "+f[2]+" ")
		case len(f) >= 2 && strings.HasPrefix(f[1], "vcs.revision="):
			want[0] = "revision " + strings.TrimPrefix(f[1], "vcs.revision=")
		}
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("version %q lacks %q (build info:\n%s)", out, w, info)
		}
	}
	// Built from a git clone (as make build and the tests build it), the binary names the
	// commit it was built from, whatever GOFLAGS the machine sets. (The go command reads only
	// a .git directory: a linked worktree's .git file gives no stamp.)
	if fi, err := os.Stat("../../.git"); err != nil || !fi.IsDir() {
		return
	}
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		if rev := strings.TrimSpace(string(head)); !strings.Contains(out, "revision "+rev) {
			t.Errorf("version %q does not name the checkout's revision %s", out, rev)
		}
	}
}

// TestEnumeratedFlagsRefuseUnknownValues: --log-level, --auth and --hashing-algorithm take only
// their values, from a flag or XLOUD_*, name the allowed ones, and nothing is created.
func TestEnumeratedFlagsRefuseUnknownValues(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"serve", "--log-level", "verbose"}, `"verbose": want one of debug, info, warn, error`},
		{[]string{"XLOUD_LOG_LEVEL=loud"}, []string{"serve"}, `XLOUD_LOG_LEVEL: "loud": want one of debug, info, warn, error`},
		{nil, []string{"serve", "--auth", "ldap"}, `"ldap": want one of embedded, keystone, none`},
		{nil, []string{"serve", "--hashing-algorithm", "md5"}, `want sha256 or sha512`},
		{nil, []string{"gc", "--log-level", "trace"}, `want one of debug, info, warn, error`},
		{nil, []string{"purge", "--log-level", "trace"}, `want one of debug, info, warn, error`},
	} {
		args := append(tc.args, "--data-dir", dir, "--registry-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0")
		if tc.args[0] != "serve" {
			args = append(tc.args, "--data-dir", dir)
		}
		_, errOut, code := run(t, tc.env, args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v %v: exit %d, want %q in %q", tc.env, tc.args, code, tc.want, errOut)
		}
		mustNotExist(t, dir)
	}
}

// TestMaintenanceRefusesNegativeDurations: gc and purge refuse durations that would reach
// into the future (and take blobs being pushed), before touching the store.
func TestMaintenanceRefusesNegativeDurations(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{})
	for _, args := range [][]string{{"gc", "--grace", "-1h"}, {"gc", "--upload-max-age", "-1s"}, {"purge", "--older-than", "-1h"}} {
		_, errOut, code := run(t, nil, append(args, "--data-dir", srv.DataDir)...)
		if code != 1 || !strings.Contains(errOut, "cannot be negative") {
			t.Errorf("%v: exit %d %q", args, code, errOut)
		}
	}
}

// TestMaintenanceRefusesPathWithoutStore: gc and purge given a path that holds no store say
// so and create nothing there.
func TestMaintenanceRefusesPathWithoutStore(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-data")
	empty := t.TempDir()
	for _, cmd := range []string{"gc", "purge"} {
		_, errOut, code := run(t, nil, cmd, "--data-dir", missing)
		if code != 1 || !strings.Contains(errOut, "no store in "+missing) {
			t.Errorf("%s on a missing path: exit %d %q", cmd, code, errOut)
		}
		mustNotExist(t, missing)
		_, errOut, code = run(t, nil, cmd, "--data-dir", empty)
		if code != 1 || !strings.Contains(errOut, "meta.db is missing") {
			t.Errorf("%s on an empty directory: exit %d %q", cmd, code, errOut)
		}
		if ents, _ := os.ReadDir(empty); len(ents) != 0 {
			t.Errorf("%s created %v in an empty directory", cmd, ents)
		}
	}
}

// TestFailedStartLeavesNoDataDir: a start that fails after making its data directory (Redis
// unreachable, a port taken) removes it, or empties it again when it was empty; a data
// directory that held something keeps it.
func TestFailedStartLeavesNoDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	_, errOut, code := run(t, nil, "serve", "--data-dir", dir, "--auth", "none",
		"--redis-url", fmt.Sprintf("redis://127.0.0.1:%d/0", testenv.FreePort(t)),
		"--registry-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "connect to redis") {
		t.Fatalf("serve with Redis down: exit %d %q", code, errOut)
	}
	mustNotExist(t, dir)

	srv := testenv.StartServer(t, testenv.ServerOptions{})
	_, errOut, code = run(t, nil, "serve", "--data-dir", dir, "--admin-password", "secret-pass",
		"--registry-addr", srv.RegistryAddr, "--api-addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "listen registry") {
		t.Fatalf("serve on a taken port: exit %d %q", code, errOut)
	}
	mustNotExist(t, dir)

	empty := t.TempDir()
	run(t, nil, "serve", "--data-dir", empty, "--auth", "none",
		"--registry-addr", srv.RegistryAddr, "--api-addr", "127.0.0.1:0")
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Fatalf("a failed start left %v in a data directory that was empty", ents)
	}

	kept := t.TempDir()
	if err := os.WriteFile(filepath.Join(kept, "mine"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, nil, "serve", "--data-dir", kept, "--auth", "none",
		"--registry-addr", srv.RegistryAddr, "--api-addr", "127.0.0.1:0")
	if _, err := os.Stat(filepath.Join(kept, "mine")); err != nil {
		t.Fatalf("a failed start removed a data directory it did not make: %v", err)
	}
}

// TestDataDirInUseNamesHolder: a second serve on a running server's data directory names that
// server's pid; a store locked by another process (no server) names that process and the lock.
func TestDataDirInUseNamesHolder(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{})
	_, errOut, code := run(t, nil, "serve", "--data-dir", srv.DataDir, "--auth", "none",
		"--registry-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0")
	if want := fmt.Sprintf("in use by xloud-image pid %d (it answers on the admin socket", srv.PID()); code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("second serve: exit %d, want %q in %q", code, want, errOut)
	}

	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, errOut, code = run(t, nil, "gc", "--data-dir", dir)
	if want := fmt.Sprintf("in use by pid %d", os.Getpid()); code != 1 || !strings.Contains(errOut, want) ||
		!strings.Contains(errOut, "the bbolt lock on "+filepath.Join(dir, "meta.db")) {
		t.Fatalf("gc on a locked store: exit %d, want %q and the lock in %q", code, want, errOut)
	}
}

// TestPurgeWhileServing: purge reaches a running server through the admin socket (the
// embedded store is locked by it) and removes the record of a deleted image.
func TestPurgeWhileServing(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{})
	c := &client{t: t, base: "http://" + srv.APIAddr}
	resp, body, err := c.do("POST", "/v2/images", strings.NewReader(`{"name":"doomed","disk_format":"raw","container_format":"bare"}`),
		"Content-Type", "application/json")
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create image: %v %v %s", resp, err, body)
	}
	var img struct{ ID string }
	json.Unmarshal(body, &img)
	if resp, body, err = c.do("DELETE", "/v2/images/"+img.ID, nil); err != nil || resp.StatusCode != 204 {
		t.Fatalf("delete image: %v %v %s", resp, err, body)
	}
	out, errOut, code := run(t, nil, "purge", "--data-dir", srv.DataDir, "--older-than", "0s")
	if code != 0 || strings.TrimSpace(out) != fmt.Sprintf(`{"purged":[%q]}`, img.ID) {
		t.Fatalf("purge while serving: exit %d %q %q", code, out, errOut)
	}
	out, _, code = run(t, nil, "purge", "--data-dir", srv.DataDir, "--older-than", "0s")
	if code != 0 || strings.TrimSpace(out) != `{"purged":[]}` {
		t.Fatalf("second purge: exit %d %q", code, out)
	}
}

// TestGCCountsRemovedBytes: a dry run says what it would free and frees nothing; a pass counts
// the bytes of files it removed, not of a blob whose file was already gone.
func TestGCCountsRemovedBytes(t *testing.T) {
	srv := testenv.StartServer(t, testenv.ServerOptions{})
	c := &client{t: t, base: srv.URL()}
	push := func(content string) string {
		sum := sha256.Sum256([]byte(content))
		d := "sha256:" + hex.EncodeToString(sum[:])
		resp, body, err := c.do("POST", "/v2/gc/test/blobs/uploads/?digest="+d, strings.NewReader(content),
			"Content-Type", "application/octet-stream")
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("push blob: %v %v %s", resp, err, body)
		}
		return hex.EncodeToString(sum[:])
	}
	kept, lost := strings.Repeat("k", 1000), strings.Repeat("l", 300)
	push(kept)
	lostHex := push(lost)
	gc := func(args ...string) map[string]any {
		out, errOut, code := run(t, nil, append([]string{"gc", "--data-dir", srv.DataDir, "--grace", "0s"}, args...)...)
		var rep map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
			t.Fatalf("gc %v: exit %d %q %q", args, code, out, errOut)
		}
		return rep
	}
	if rep := gc("--dry-run"); rep["would_free"] != float64(len(kept)+len(lost)) || rep["bytes_freed"] != float64(0) {
		t.Fatalf("dry run: %v", rep)
	}
	if err := os.Remove(filepath.Join(srv.DataDir, "blobs", "sha256", lostHex[:2], lostHex)); err != nil {
		t.Fatal(err)
	}
	rep := gc()
	if rep["bytes_freed"] != float64(len(kept)) || rep["would_free"] != nil || len(rep["blobs"].([]any)) != 2 {
		t.Fatalf("gc: %v", rep)
	}
}

// TestCacheFlagsRefused: cache flags that cannot work stop the start with a clear error and
// leave no data directory; a cache directory that cannot be made does too.
func TestCacheFlagsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--cache-dir", t.TempDir(), "--cache-max-size", "0"}, "--cache-max-size 0: want a positive number of bytes"},
		{[]string{"--cache-dir", t.TempDir(), "--cache-max-size", "-5"}, "--cache-max-size -5"},
		{[]string{"--cache-dir", t.TempDir(), "--cache-max-size", "10GiB"}, "invalid value"},
		{[]string{"--cache-dir", t.TempDir(), "--cache-prefetch-delay", "-1s"}, "--cache-prefetch-delay -1s"},
		{[]string{"--cache-dir", filepath.Join(file, "cache")}, "cache"},
	} {
		args := append([]string{"serve", "--data-dir", dir, "--auth", "none", "--registry-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0"}, c.args...)
		_, errOut, code := run(t, nil, args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("serve %v: exit %d, stderr %q; want a failure naming %q", c.args, code, errOut, c.want)
		}
		mustNotExist(t, dir)
	}
}
