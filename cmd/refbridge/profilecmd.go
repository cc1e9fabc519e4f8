package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"refbridge/profile"
)

// problemsFound is returned by a command that has already printed every
// problem it found; run exits 1 without printing anything more.
type problemsFound struct{}

// Error implements error; run never prints it.
func (problemsFound) Error() string { return "problems found" }

// profileUsage is what `refbridge profile --help` prints.
const profileUsage = `usage: refbridge profile check FILE|NAME

Checks a country profile (a YAML file, or an embedded NAME such as gambella)
and prints every problem with its YAML path and line. Exit status: 0 valid
(warnings allowed), 1 problems found, 2 usage error.
`

// isHelpFlag reports whether arg asks for help, as the flag package reads it.
func isHelpFlag(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "--h"
}

// cmdProfile runs `refbridge profile check FILE|NAME`: it prints every
// finding with its YAML path and line, then a count; warnings (entries
// marked review: true) do not fail the check.
func cmdProfile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"profile: missing subcommand; use: profile check FILE|NAME"}
	}
	if slices.ContainsFunc(args, isHelpFlag) {
		_, err := io.WriteString(stdout, profileUsage)
		return err
	}
	if args[0] != "check" {
		return usageError{fmt.Sprintf("profile: unknown subcommand %q; use: profile check FILE|NAME", args[0])}
	}
	if len(args) != 2 {
		return usageError{"profile check: give exactly one profile FILE or embedded NAME (" + strings.Join(profile.Names(), ", ") + ")"}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ref := args[1]
	src, err := profile.Read(ref)
	if err != nil {
		return err
	}
	_, findings := profile.Check(src)
	errs, warns := 0, 0
	for _, f := range findings {
		if f.Severity == profile.Error {
			errs++
		} else {
			warns++
		}
		if _, err := fmt.Fprintln(stdout, f); err != nil {
			return err
		}
	}
	verdict := "valid"
	if errs > 0 {
		verdict = "INVALID"
	}
	fmt.Fprintf(stdout, "profile %s: %s, %d %s, %d %s\n", ref, verdict, errs, plural(errs, "error"), warns, plural(warns, "warning"))
	if errs > 0 {
		return problemsFound{}
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
