//go:build !linux

package main

// flockHolder is unknown where there is no /proc/locks; the message then says only that the
// store is locked.
func flockHolder(string) int { return 0 }
