package main

// inspectCommand is cmdInspect once the disk-format inspector lands (diskformat/).
var inspectCommand = func([]string) error { return errInspectPending }

var errInspectPending = errorString("inspect: the disk format inspector is not built into this binary yet")

type errorString string

func (e errorString) Error() string { return string(e) }
