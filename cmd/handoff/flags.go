package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

// newFlagSet returns a flag set whose usage shows the synopsis, what the
// subcommand does, its flags and an example.
func newFlagSet(name, synopsis, about, example string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags:\n", synopsis, about)
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nExample:\n  %s\n", example)
	}
	return fs
}

// parseFlags parses args; ok is false when the caller must return code
// (help was asked for: 0, bad usage: 2).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK, false
	}
	if err != nil {
		return exitError, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "handoff %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitError, false
	}
	return exitOK, true
}
