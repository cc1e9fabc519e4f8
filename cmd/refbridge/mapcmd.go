package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"refbridge"
	"refbridge/mapping"
	"refbridge/profile"
)

// maxMapInput bounds what `map` reads from stdin; one message is far smaller.
const maxMapInput = 32 << 20

const mapUsage = `Usage: refbridge map FLOW --profile P [--now RFC3339] < in.json > out.json

Runs one flow's mapping on the JSON message on stdin and prints the message it
would send. Invalid input exits 1 and prints only a JSON list of problems.

FLOW is intervention-to-case, case-to-dtp-referral, dtp-decision-to-referral
or service-decision-to-dtp. P is an embedded profile name (gambella) or a file.
`

// cmdMap runs `refbridge map`, the pure transform of one flow, so a focal
// point can see what refbridge would send for a message without sending it.
func cmdMap(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("map", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints usage errors once, with the usage text
	profileRef := fs.String("profile", "", "country profile: embedded NAME or FILE")
	nowArg := fs.String("now", "", "processing time, RFC 3339; default: now")
	// FLOW may stand before, between or after the flags.
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				_, err := io.WriteString(stdout, mapUsage)
				return err
			}
			return usageError{"map: " + err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch {
	case len(positional) == 0:
		return usageError{"map: missing FLOW (" + strings.Join(mapping.Flows(), ", ") + ")"}
	case len(positional) > 1:
		return usageError{fmt.Sprintf("map: one FLOW only, got %d arguments", len(positional))}
	case !slices.Contains(mapping.Flows(), positional[0]):
		return usageError{fmt.Sprintf("map: unknown FLOW %q (%s)", positional[0], strings.Join(mapping.Flows(), ", "))}
	case *profileRef == "":
		return usageError{"map: --profile is required (an embedded name such as gambella, or a file)"}
	}
	now := time.Now()
	if *nowArg != "" {
		t, err := time.Parse(time.RFC3339, *nowArg)
		if err != nil {
			return usageError{"map: --now must be an RFC 3339 time such as 2024-05-10T12:00:00Z"}
		}
		now = t
	}
	p, err := profile.Load(*profileRef)
	if err != nil {
		if refbridge.ErrorCodeOf(err) == refbridge.EInvalid {
			return fmt.Errorf("profile %s is invalid; run: refbridge profile check %s", *profileRef, *profileRef)
		}
		return err
	}
	input, err := io.ReadAll(io.LimitReader(stdin, maxMapInput+1))
	if err != nil {
		return fmt.Errorf("map: reading stdin: %w", err)
	}
	if len(input) > maxMapInput {
		return fmt.Errorf("map: input is larger than %d MiB", maxMapInput>>20)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	out, problems, err := mapping.Run(p, positional[0], input, now)
	if err != nil {
		return err
	}
	if problems != nil {
		if _, err := stdout.Write(mapping.EncodeProblems(problems)); err != nil {
			return err
		}
		return problemsFound{}
	}
	_, err = stdout.Write(out)
	return err
}
