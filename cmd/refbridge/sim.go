package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"refbridge"
	"refbridge/dtp/dtptest"
	"refbridge/primero/primerotest"
)

// cmdSim runs one peer simulator in the foreground until ctx ends, for
// development, demos and the OpenFn baseline benchmark.
func cmdSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"sim needs a peer: primero or dtp"}
	}
	switch args[0] {
	case "primero":
		return simPrimero(ctx, args[1:], stdout, stderr)
	case "dtp":
		return simDTP(ctx, args[1:], stdout, stderr)
	}
	return usageError{fmt.Sprintf("unknown simulator %q: want primero or dtp", args[0])}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags turns flag errors into usage errors (exit 2).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

func simPrimero(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim primero", stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	user := fs.String("user", "refbridge_api", "API user the simulator accepts")
	password := fs.String("password", "", "that user's password (default: $REFBRIDGE_SIM_PASSWORD, else generated and printed)")
	seed := fs.Int64("seed", 1, "seed for ids and fault injection")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	pw := *password
	if pw == "" {
		pw = os.Getenv("REFBRIDGE_SIM_PASSWORD")
	}
	generated := pw == ""
	if generated {
		pw = randomSecret()
	}
	sim := primerotest.New(primerotest.Options{Seed: *seed})
	sim.AddUser(primerotest.UserSpec{
		User:     refbridge.User{UserName: *user, FullName: "refbridge API user"},
		Password: pw, Scope: "all", Permissions: []string{"sync_external"},
	})
	defer sim.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("sim primero: listen on %s: %w", *addr, err)
	}
	fmt.Fprintf(stdout, "Primero v2 simulator on http://%s/api/v2 (HTTP Basic or token login)\n", ln.Addr())
	fmt.Fprintf(stdout, "  API user: %s\n", *user)
	if generated {
		fmt.Fprintf(stdout, "  password: %s (generated; set --password or REFBRIDGE_SIM_PASSWORD to choose)\n", pw)
	}
	fmt.Fprintln(stdout, "Ctrl-C stops.")
	return serve(ctx, &http.Server{Handler: sim.Handler()}, ln, false)
}

func simDTP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim dtp", stderr)
	addr := fs.String("addr", "127.0.0.1:8443", "listen address (TLS)")
	pkiDir := fs.String("pki", "", "directory for the generated CA, server and client certificates (default: a temporary directory, removed when the simulator stops)")
	key := fs.String("subscription-key", "", "Ocp-Apim-Subscription-Key the gateway accepts (default: generated and printed)")
	seed := fs.Int64("seed", 1, "seed for fault injection")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dir := *pkiDir
	if dir == "" {
		d, err := os.MkdirTemp("", "refbridge-dtp-pki-")
		if err != nil {
			return fmt.Errorf("sim dtp: %w", err)
		}
		// It holds a client private key: it must not outlive the simulator.
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sim dtp: create %s: %w", dir, err)
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return usageError{fmt.Sprintf("sim dtp: --addr %q: %v", *addr, err)}
	}
	pki, err := dtptest.NewPKI(dir, host)
	if err != nil {
		return fmt.Errorf("sim dtp: generate certificates in %s: %w", dir, err)
	}
	k := *key
	if k == "" {
		k = randomSecret()
	}
	sim := dtptest.New(dtptest.Options{Seed: *seed, SubscriptionKeys: []string{k}, PKI: pki})
	defer sim.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("sim dtp: listen on %s: %w", *addr, err)
	}
	base := "https://" + ln.Addr().String()
	fmt.Fprintf(stdout, "DTP simulator (mutual TLS) on %s\n", base)
	fmt.Fprintf(stdout, "  ReceiveIncomingReferral:         %s%s\n", base, dtptest.PathReferral)
	fmt.Fprintf(stdout, "  ReceiveDecisionOutgoingReferral: %s%s\n", base, dtptest.PathDecision)
	fmt.Fprintf(stdout, "  subscription key: %s\n", k)
	fmt.Fprintf(stdout, "  CA: %s\n  client certificate: %s\n  client key: %s\n", pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile)
	fmt.Fprintln(stdout, "Ctrl-C stops.")
	srv := &http.Server{Handler: sim.Handler(), TLSConfig: sim.TLSConfig(),
		// Refused handshakes (no or untrusted client certificate) are expected; keep them off the console.
		ErrorLog: log.New(io.Discard, "", 0)}
	return serve(ctx, srv, ln, true)
}

// serve runs srv on ln until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, srv *http.Server, ln net.Listener, useTLS bool) error {
	srv.ReadHeaderTimeout = 10 * time.Second
	errc := make(chan error, 1)
	go func() {
		if useTLS {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// randomSecret returns 128 random bits, hex-encoded.
func randomSecret() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
