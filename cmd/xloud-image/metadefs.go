package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"

	"github.com/xloud/xloud-image/metadefs"
)

// loadModes are the --merge/--prefer-new/--overwrite choices as the admin socket names them.
var loadModes = map[string]metadefs.Mode{
	"skip": metadefs.Skip, "merge": metadefs.Merge, "prefer-new": metadefs.PreferNew, "overwrite": metadefs.Overwrite,
}

// cmdMetadefs runs `metadefs load`: Glance's `glance-manage db_load_metadefs`. The files are
// checked here, then loaded by the server running on the data directory (through the admin
// socket, as gc does) or, with none running, into the store opened here.
func cmdMetadefs(args []string) error {
	const usage = "usage: xloud-image metadefs load [--merge [--prefer-new] | --overwrite] DIR"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Println(usage)
		return nil
	}
	if len(args) == 0 || args[0] != "load" {
		return errors.New(usage)
	}
	var c config
	fs := newFlagSet("metadefs load", "DIR", "load the metadata definition files (*.json) of DIR; print what was done as JSON.\n"+
		"Namespaces that exist are skipped, unless --merge (add what they lack; with --prefer-new the files' values win) or --overwrite (replace them).")
	cfgFile := commonFlags(fs, &c)
	merge := fs.Bool("merge", false, "merge into existing namespaces, keeping their values")
	preferNew := fs.Bool("prefer-new", false, "with --merge: the files' values replace existing ones")
	overwrite := fs.Bool("overwrite", false, "replace existing namespaces and their contents")
	if err := parseFlags(fs, cfgFile, args[1:]); err != nil {
		return err
	}
	setupLogging(c.LogLevel)
	mode := "skip"
	switch {
	case *overwrite && (*merge || *preferNew):
		return errors.New("--overwrite goes with neither --merge nor --prefer-new")
	case *preferNew && !*merge:
		return errors.New("--prefer-new goes with --merge")
	case *overwrite:
		mode = "overwrite"
	case *preferNew:
		mode = "prefer-new"
	case *merge:
		mode = "merge"
	}
	if fs.NArg() != 1 {
		return errors.New("give one directory of definition files")
	}
	files, err := metadefs.ReadFiles(os.DirFS(fs.Arg(0)))
	if err != nil {
		return err
	}
	if _, err := metadefs.ParseDefinitions(files); err != nil {
		return err // said before reaching any store, naming the file
	}
	if err := requireStore(c); err != nil {
		return err
	}
	ctx := context.Background()
	var rep metadefs.LoadReport
	err = adminPostJSON(ctx, c.DataDir, "/metadefs/load", url.Values{"mode": {mode}}, files, &rep)
	if errors.Is(err, errNoServer) {
		rep, err = loadInProcess(ctx, c, files, loadModes[mode])
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func loadInProcess(ctx context.Context, c config, files []metadefs.File, mode metadefs.Mode) (metadefs.LoadReport, error) {
	store, closeStore, err := openStore(ctx, c, 2*time.Second)
	if err != nil {
		return metadefs.LoadReport{}, err
	}
	defer closeStore()
	return loadWith(ctx, metadefs.New(store.Meta(), (*security)(nil).imagePolicy()), files, mode)
}

// loadWith parses and loads files into md, the server's definitions or ones opened for the
// command.
func loadWith(ctx context.Context, md *metadefs.Store, files []metadefs.File, mode metadefs.Mode) (metadefs.LoadReport, error) {
	defs, err := metadefs.ParseDefinitions(files)
	if err != nil {
		return metadefs.LoadReport{}, err
	}
	return md.Load(ctx, defs, mode)
}

// adminPostJSON POSTs body as JSON to a running server's admin socket and decodes its JSON
// answer into out; errNoServer when no server listens there.
func adminPostJSON(ctx context.Context, dataDir, path string, q url.Values, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://admin"+path+"?"+q.Encode(), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := adminClient(dataDir).Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return errNoServer
		}
		return fmt.Errorf("reach server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("server: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// serveMetadefsLoad is the admin socket's POST /metadefs/load?mode=: the files of a
// `metadefs load`, checked again and loaded.
func serveMetadefsLoad(md *metadefs.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		mode, ok := loadModes[r.URL.Query().Get("mode")]
		if !ok {
			http.Error(w, fmt.Sprintf("mode %q: want skip, merge, prefer-new or overwrite", r.URL.Query().Get("mode")), http.StatusBadRequest)
			return
		}
		var files []metadefs.File
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 256<<20)).Decode(&files); err != nil {
			http.Error(w, "definition files: "+err.Error(), http.StatusBadRequest)
			return
		}
		defs, err := metadefs.ParseDefinitions(files)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rep, err := md.Load(r.Context(), defs, mode)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(rep)
	}
}
