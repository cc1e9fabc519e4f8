// Command refbridge is the Primero ⇄ proGres (DTP) referral bridge. main only
// wires packages together; behaviour lives in the packages named after what
// they adapt.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"refbridge"
)

// exitUsage is returned for a command line that cannot be understood.
const exitUsage = 2

// usageError marks errors that should print usage and exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, stdin, stdout, stderr)
	var ue usageError
	var pf problemsFound
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &pf):
		return 1 // the command already printed every problem
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "refbridge: %s\n\n%s", ue.msg, usage)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "refbridge: %v\n", err)
		return 1
	}
}

const usage = `Usage: refbridge COMMAND [ARGS]

Commands:
  version                          print the version and build information
  demo [--once] [--addr HOST:PORT] [--referrals N]
                                   run both simulators and the bridge on a temporary
                                   store with synthetic traffic through all four flows
  serve --config FILE              run the bridge in production
  migrate --config FILE            bring the store's schema up to date
  keys rotate --config FILE        re-encrypt stored payloads under the current key
  sim primero [--addr HOST:PORT]   run the Primero v2 simulator (development and tests)
  sim dtp [--addr HOST:PORT] [--pki DIR]
                                   run the DTP simulator with mutual TLS; writes its
                                   CA and a client certificate to DIR
  profile check FILE|NAME          validate a country profile; every problem with its YAML path
  map FLOW --profile P [--now T]   run one flow's pure mapping on stdin (JSON) to stdout; FLOW is
                                   intervention-to-case, case-to-dtp-referral,
                                   dtp-decision-to-referral or service-decision-to-dtp
  audit verify --config FILE       check the audit trail's hash chain; exit 1 naming the
                                   first broken event
  audit export --config FILE --format csv|json [--since T]
                                   write the audit trail to stdout; its final hash goes to
                                   stderr (keep it: the chain must still contain it later)
  user add|passwd|disable --config FILE NAME [--role ROLE] [--language en|fr|ar|am]
                                   manage console accounts; the password is read
                                   from stdin; ROLE is admin, focal_point or auditor
  help                             show this text
`

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command given"}
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "version", "--version":
		return cmdVersion(stdout)
	case "sim":
		return cmdSim(ctx, args[1:], stdout, stderr)
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, args[1:], stdout, stderr)
	case "keys":
		return cmdKeys(ctx, args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "profile":
		return cmdProfile(ctx, args[1:], stdout, stderr)
	case "map":
		return cmdMap(ctx, args[1:], stdin, stdout, stderr)
	case "audit":
		return cmdAudit(ctx, args[1:], stdout, stderr)
	case "user":
		return cmdUser(ctx, args[1:], stdin, stdout, stderr)
	}
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

// explainProblems spells out every problem of an invalid-input error, one
// per line, for a person fixing a configuration file.
func explainProblems(err error) error {
	ps := refbridge.ErrorProblems(err)
	if len(ps) == 0 {
		return err
	}
	var b strings.Builder
	b.WriteString(err.Error())
	for _, p := range ps {
		fmt.Fprintf(&b, "\n  %s: %s (%s)", p.Field, p.Detail, p.Rule)
	}
	return errors.New(b.String())
}
