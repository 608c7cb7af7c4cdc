package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/xloud/xloud-image/diskformat"
)

// cmdInspect implements `xloud-image inspect FILE`: it prints the format,
// virtual size and safety verdict of a disk image as one JSON object,
// {"format":…,"virtual_size":…,"safe":…,"reason":…}. An unsafe image is a
// verdict, not an error: the exit status only reports failure to inspect.
func cmdInspect(args []string) error {
	fs := newFlagSet("inspect", "FILE", "print a disk image file's format, virtual size and safety verdict as one JSON object;\nan unsafe image is a verdict (exit 0), not an error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one FILE (usage: xloud-image inspect FILE)")
	}
	r, err := diskformat.InspectFile(fs.Arg(0))
	if err != nil {
		return err
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return fmt.Errorf("inspect: write: %w", err)
	}
	return nil
}
