//go:build !linux

package storage

import (
	"errors"
	"os"
)

// setDirect: direct I/O is used on Linux only; elsewhere a cache fill writes through the
// page cache.
func setDirect(f *os.File, on bool) error {
	if !on {
		return nil
	}
	return errors.ErrUnsupported
}

// openDirect: see setDirect.
func openDirect(path string) (*os.File, error) { return nil, errors.ErrUnsupported }
