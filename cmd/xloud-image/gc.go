package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"

	"github.com/xloud/xloud-image/storage"
)

// cmdGC collects garbage. With a server running on the data directory it asks that server
// (through the admin socket), so collection and pushes coordinate in one place; otherwise it
// opens the store itself.
func cmdGC(args []string) error {
	var c config
	fs := newFlagSet("gc", "", "remove blobs no manifest references and stale upload sessions; print what was removed as JSON")
	cfgFile := commonFlags(fs, &c)
	dryRun := fs.Bool("dry-run", false, "report what would be removed (would_free), remove nothing")
	grace := fs.Duration("grace", time.Hour, "spare blobs pushed or linked more recently than this")
	uploadAge := fs.Duration("upload-max-age", 24*time.Hour, "remove upload sessions idle longer than this")
	if err := parseFlags(fs, cfgFile, args); err != nil {
		return err
	}
	setupLogging(c.LogLevel)
	// A negative grace would put the cutoff in the future and take blobs being pushed.
	if *grace < 0 || *uploadAge < 0 {
		return fmt.Errorf("--grace %s, --upload-max-age %s: cannot be negative", *grace, *uploadAge)
	}
	if err := requireStore(c); err != nil {
		return err
	}
	ctx := context.Background()
	q := url.Values{"dry-run": {fmt.Sprint(*dryRun)}, "grace": {grace.String()},
		"upload-max-age": {uploadAge.String()}}
	var rep storage.GCReport
	err := adminCall(ctx, c.DataDir, "/gc", q, &rep)
	if errors.Is(err, errNoServer) {
		rep, err = gcInProcess(ctx, c, storage.GCOptions{DryRun: *dryRun, Grace: *grace, UploadMaxAge: *uploadAge})
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

var errNoServer = errors.New("no server on the admin socket")

// adminClient reaches the server on the data directory's admin socket.
func adminClient(dataDir string) *http.Client {
	sock := adminSocket(dataDir)
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
}

// adminCall POSTs one admin command to a running server and decodes its JSON answer into out;
// errNoServer when no server listens on the socket.
func adminCall(ctx context.Context, dataDir, path string, q url.Values, out any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://admin"+path+"?"+q.Encode(), nil)
	resp, err := adminClient(dataDir).Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return errNoServer
		}
		return fmt.Errorf("reach server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("server: %s: %s", resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func gcInProcess(ctx context.Context, c config, opt storage.GCOptions) (storage.GCReport, error) {
	store, closeStore, err := openStore(ctx, c, 2*time.Second)
	if err != nil {
		return storage.GCReport{}, err
	}
	defer closeStore()
	// Other nodes may share the store (Redis): collect only when none is collecting.
	node := fmt.Sprintf("gc-command-%d", os.Getpid())
	return collectExclusive(ctx, store, node, func(ctx context.Context) (storage.GCReport, error) {
		return store.CollectGarbage(ctx, opt)
	})
}
