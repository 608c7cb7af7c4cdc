package storage

import (
	"os"
	"syscall"
)

// openRead opens path for reading. os.Open also registers a descriptor with the network
// poller, which a regular file refuses: four fcntl calls and a failing epoll_ctl on every
// open, and a signed URL's range read opens its blob once per request. A file made from a
// blocking descriptor skips them; reads and sendfile are the same.
func openRead(path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}
