package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
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
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	cfgFile := commonFlags(fs, &c)
	dryRun := fs.Bool("dry-run", false, "report what would be removed, remove nothing")
	grace := fs.Duration("grace", time.Hour, "spare blobs pushed or linked more recently than this")
	uploadAge := fs.Duration("upload-max-age", 24*time.Hour, "remove upload sessions idle longer than this")
	if err := parseFlags(fs, cfgFile, args); err != nil {
		return err
	}
	setupLogging(c.LogLevel)
	ctx := context.Background()
	q := url.Values{"dry-run": {fmt.Sprint(*dryRun)}, "grace": {grace.String()},
		"upload-max-age": {uploadAge.String()}}
	rep, err := gcThroughServer(ctx, c.DataDir, q)
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

func gcThroughServer(ctx context.Context, dataDir string, q url.Values) (storage.GCReport, error) {
	var rep storage.GCReport
	sock := adminSocket(dataDir)
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://admin/gc?"+q.Encode(), nil)
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return rep, errNoServer
		}
		return rep, fmt.Errorf("reach server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return rep, fmt.Errorf("server: %s: %s", resp.Status, b)
	}
	return rep, json.NewDecoder(resp.Body).Decode(&rep)
}

func gcInProcess(ctx context.Context, c config, opt storage.GCOptions) (storage.GCReport, error) {
	store, closeStore, err := openStore(ctx, c, 2*time.Second)
	if err != nil {
		return storage.GCReport{}, err
	}
	defer closeStore()
	return store.CollectGarbage(ctx, opt)
}
