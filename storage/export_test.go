package storage

import (
	"os"
	"syscall"
)

// SetFillWriteHook has the cache writer call h before each write (a slow cache disk) until
// the returned function restores it. Set it before the fill starts, restore it after
// Cache.Flush.
func SetFillWriteHook(h func(off int64)) (restore func()) {
	old := fillWriteHook
	fillWriteHook = h
	return func() { fillWriteHook = old }
}

// RefuseDirectIO has fills find O_DIRECT refused (EINVAL), as on a filesystem without it,
// until the returned function restores it.
func RefuseDirectIO() (restore func()) {
	old := enableDirect
	enableDirect = func(*os.File) error { return syscall.EINVAL }
	return func() { enableDirect = old }
}
