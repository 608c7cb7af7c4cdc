//go:build !linux

package storage

import "os"

// startWriteback does nothing where the kernel offers no write-behind hint (sync_file_range
// is Linux's); the fsync at commit writes everything.
func startWriteback(f *os.File, off, n int64) {}
