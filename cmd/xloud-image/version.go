package main

import (
	"flag"
	"fmt"
	"runtime/debug"
)

// cmdVersion prints what was built: the module version and the VCS revision the Go toolchain
// stamped into the binary.
func cmdVersion(args []string) error {
	fs := newFlagSet("version", "", "print the build: module version, VCS revision and Go version")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Println(buildVersion())
	return nil
}

// buildVersion is one line: "xloud-image VERSION (revision REV[, modified], TIME) GO".
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "xloud-image (no build information)"
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	v := "xloud-image " + bi.Main.Version
	if settings["vcs.revision"] == "" {
		// Say so rather than print a version that looks complete.
		return v + " (revision unknown: built without VCS stamping) " + bi.GoVersion
	}
	if rev := settings["vcs.revision"]; rev != "" {
		v += " (revision " + rev
		if settings["vcs.modified"] == "true" {
			v += ", modified"
		}
		if t := settings["vcs.time"]; t != "" {
			v += ", " + t
		}
		v += ")"
	}
	return v + " " + bi.GoVersion
}

// newFlagSet is a command's flag set whose help names the command and its arguments.
func newFlagSet(name, argsUsage, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: xloud-image %s [flags] %s\n\n%s\n\nflags:\n", name, argsUsage, summary)
		fs.PrintDefaults()
	}
	return fs
}
