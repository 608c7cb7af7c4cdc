package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/xloud/xloud-image/catalog"
)

// purgeReport is what `purge` prints: the ids of the image records removed.
type purgeReport struct {
	Purged []string `json:"purged"`
}

// cmdPurge removes the records of images deleted longer ago than --older-than. With a server
// running on the data directory it asks that server (through the admin socket, as gc does),
// since the embedded store is locked while a server runs; otherwise it opens the store itself.
func cmdPurge(args []string) error {
	var c config
	fs := newFlagSet("purge", "", "remove the records of images deleted longer ago than --older-than; print their ids as JSON")
	cfgFile := commonFlags(fs, &c)
	olderThan := fs.Duration("older-than", 30*24*time.Hour, "purge records of images deleted longer ago than this")
	if err := parseFlags(fs, cfgFile, args); err != nil {
		return err
	}
	setupLogging(c.LogLevel)
	if *olderThan < 0 {
		return fmt.Errorf("--older-than %s: cannot be negative", *olderThan)
	}
	if err := requireStore(c); err != nil {
		return err
	}
	ctx := context.Background()
	var rep purgeReport
	err := adminCall(ctx, c.DataDir, "/purge", map[string][]string{"older-than": {olderThan.String()}}, &rep)
	if errors.Is(err, errNoServer) {
		rep, err = purgeInProcess(ctx, c, *olderThan)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

func purgeInProcess(ctx context.Context, c config, olderThan time.Duration) (purgeReport, error) {
	store, closeStore, err := openStore(ctx, c, 2*time.Second)
	if err != nil {
		return purgeReport{}, err
	}
	defer closeStore()
	return purgeWith(ctx, catalog.New(store, (*security)(nil).imagePolicy()), olderThan)
}

// purgeWith purges through cat, the server's catalog or one opened for the command.
func purgeWith(ctx context.Context, cat *catalog.Catalog, olderThan time.Duration) (purgeReport, error) {
	ids, err := cat.Purge(ctx, time.Now().Add(-olderThan))
	if ids == nil {
		ids = []string{}
	}
	return purgeReport{Purged: ids}, err
}
