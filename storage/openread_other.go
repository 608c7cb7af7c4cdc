//go:build !linux

package storage

import "os"

// openRead opens path for reading (openread_linux.go saves system calls on Linux).
func openRead(path string) (*os.File, error) { return os.Open(path) }
