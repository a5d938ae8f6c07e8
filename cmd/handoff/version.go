package main

import (
	"fmt"
	"runtime/debug"
)

// runVersion prints the module version and the Go toolchain it was built
// with, e.g. "handoff v0.3.0 (go1.26.0)".
func runVersion(args []string) int {
	fs := newFlagSet("version", "handoff version", "Print the version of this handoff binary.", "handoff version")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fmt.Println(versionString())
	return exitOK
}

func versionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "handoff (unknown version)"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return fmt.Sprintf("handoff %s (%s)", v, info.GoVersion)
}
