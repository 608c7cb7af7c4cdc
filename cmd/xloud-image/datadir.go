package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	berrors "go.etcd.io/bbolt/errors"
)

// requireStore refuses a data directory that holds no store, so that a maintenance command
// given a wrong path says so instead of creating an empty store there and reporting nothing.
func requireStore(c config) error {
	marker := filepath.Join(c.DataDir, "meta.db")
	if c.RedisURL != "" && len(c.Stores) > 0 {
		return nil // nothing of the store is in the data directory
	}
	if c.RedisURL != "" {
		marker = filepath.Join(c.DataDir, "blobs")
	}
	if _, err := os.Stat(marker); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no store in %s (%s is missing): give --data-dir of a server's data directory",
				c.DataDir, filepath.Base(marker))
		}
		return fmt.Errorf("data directory %s: %w", c.DataDir, err)
	}
	return nil
}

// dataDirState is what a data directory held before a start: nothing (absent), an empty
// directory, or something that must stay.
type dataDirState int

const (
	dataDirKept dataDirState = iota
	dataDirAbsent
	dataDirEmpty
)

// dataDirBefore reports what dir holds now, so that a start that fails can take back what it
// made (see removeIfFailed).
func dataDirBefore(dir string) dataDirState {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return dataDirAbsent
	case err == nil && len(ents) == 0:
		return dataDirEmpty
	}
	return dataDirKept
}

// removeIfFailed takes back what a failed start made in the data directory (an admin
// password, an empty meta.db), so a bad flag or an unreachable Redis leaves no half-made store:
// the directory itself when it was absent, its contents when it was empty.
func removeIfFailed(dir string, before dataDirState, err error) {
	if err == nil || before == dataDirKept {
		return
	}
	if before == dataDirAbsent {
		os.RemoveAll(dir)
		return
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// inUseError explains a metadata store that is locked: which process holds it and how that
// was found, instead of bbolt's bare "timeout".
func inUseError(dataDir string, err error) error {
	if !errors.Is(err, berrors.ErrTimeout) {
		return err
	}
	db := filepath.Join(dataDir, "meta.db")
	if pid := adminPID(dataDir); pid > 0 {
		return fmt.Errorf("data directory %s is in use by xloud-image pid %d (it answers on the admin socket %s); stop it first, or give another --data-dir",
			dataDir, pid, adminSocket(dataDir))
	}
	if pid := flockHolder(db); pid > 0 {
		return fmt.Errorf("data directory %s is in use by pid %d (%s: the bbolt lock on %s); stop it first, or give another --data-dir",
			dataDir, pid, processName(pid), db)
	}
	return fmt.Errorf("data directory %s is in use: another process holds the bbolt lock on %s: %w", dataDir, db, err)
}

// adminPID asks a server on the data directory's admin socket for its process id; 0 when none
// answers.
func adminPID(dataDir string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://admin/pid", nil)
	resp, err := adminClient(dataDir).Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// processName is pid's command name, for the message; "unknown command" when unreadable.
func processName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "unknown command"
	}
	return strings.TrimSpace(string(b))
}
