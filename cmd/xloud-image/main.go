// Command xloud-image is the Xloud Image Service: `serve` runs the Registry API and the API
// port; `gc` collects unreferenced blobs; `inspect` reports what a disk image file is.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `usage: xloud-image <command> [flags]

commands:
  serve      run the service (Registry API, Image and Identity API)
  gc         remove blobs no manifest references and stale uploads (--dry-run)
  purge      remove records of images deleted longer ago than --older-than (default 720h)
  metadefs   load metadata definition files: metadefs load [--merge [--prefer-new] | --overwrite] DIR
  inspect    print a disk image file's format, virtual size and safety verdict as JSON
  boot-args  print the qemu-img and qemu-system-x86_64 lines that boot an image in place (signed URL)
  version    print the build (module version and VCS revision)

Run "xloud-image <command> -h" for a command's flags. Every flag also reads XLOUD_<FLAG>
(e.g. XLOUD_REDIS_URL) and the YAML file named by --config.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = cmdServe(args)
	case "gc":
		err = cmdGC(args)
	case "purge":
		err = cmdPurge(args)
	case "inspect":
		err = cmdInspect(args)
	case "metadefs":
		err = cmdMetadefs(args)
	case "boot-args":
		err = cmdBootArgs(args)
	case "version", "--version":
		err = cmdVersion(args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "xloud-image: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	// Help asked for is not a failure: the flag package has printed it.
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "xloud-image %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
