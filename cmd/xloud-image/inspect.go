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
	if len(args) != 1 {
		return errors.New("usage: xloud-image inspect FILE")
	}
	r, err := diskformat.InspectFile(args[0])
	if err != nil {
		return err
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return fmt.Errorf("inspect: write: %w", err)
	}
	return nil
}
