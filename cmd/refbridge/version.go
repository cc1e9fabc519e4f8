package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// cmdVersion prints the module version and the VCS revision the binary was
// built from, which is what a focal point reports when asking for support.
func cmdVersion(w io.Writer) error {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Errorf("no build information in this binary")
	}
	rev, modified, at := "unknown", "", ""
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (modified)"
			}
		case "vcs.time":
			at = " " + s.Value
		}
	}
	_, err := fmt.Fprintf(w, "refbridge %s revision %s%s%s %s\n", info.Main.Version, rev, modified, at, info.GoVersion)
	return err
}
