// Command stackprobe measures what large, lazily mapped coroutine stacks
// really cost in physical memory. Run `stackprobe --help` for the flags.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(exitCode(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}
