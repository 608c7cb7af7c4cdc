package storage_test

import (
	"os"
	"os/exec"
	"testing"
)

// TestBuildsOnEveryOS: storage (with its metadata store) compiles for the other systems Go
// supports, so nothing Linux-only (sync_file_range, ...) creeps in outside a _linux.go file
// with a portable fallback. `make lint` checks the whole module the same way.
func TestBuildsOnEveryOS(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to cross-build: %v", err)
	}
	for _, goos := range []string{"windows", "darwin", "freebsd"} {
		cmd := exec.Command(goBin, "build", "./...")
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("GOOS=%s go build ./storage/...: %v\n%s", goos, err, out)
		}
	}
}
