package main

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"time"

	"github.com/xloud/xloud-image/catalog"
)

// cmdPurge removes the records of images deleted longer ago than --older-than. It opens the
// store itself: with the embedded store, run it while the server is stopped (the file is
// locked while it runs); with Redis, any time.
func cmdPurge(args []string) error {
	var c config
	fs := flag.NewFlagSet("purge", flag.ContinueOnError)
	cfgFile := commonFlags(fs, &c)
	olderThan := fs.Duration("older-than", 30*24*time.Hour, "purge records of images deleted longer ago than this")
	if err := parseFlags(fs, cfgFile, args); err != nil {
		return err
	}
	setupLogging(c.LogLevel)
	ctx := context.Background()
	store, closeStore, err := openStore(ctx, c, 2*time.Second)
	if err != nil {
		return err
	}
	defer closeStore()
	cat := catalog.New(store, (*security)(nil).imagePolicy())
	ids, err := cat.Purge(ctx, time.Now().Add(-*olderThan))
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"purged": ids})
}
