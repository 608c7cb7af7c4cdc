package storage

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to begin writing a range of f to disk without waiting, so
// dirty pages do not pile up for the final fsync. Its error is ignored on purpose: it is a
// hint, and the fsync at commit reports any write failure.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
