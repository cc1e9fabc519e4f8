package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"refbridge"
)

// cmdUser handles `user add|passwd|disable --config FILE NAME`: console
// accounts, so that the first admin can be created before the console is
// reachable. The password is read from the first line of stdin, never from
// the command line (which other local users can see in the process list).
// Like migrate, it opens the store, so on SQLite it runs with serve stopped.
func cmdUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	const use = "use: user add|passwd|disable --config FILE NAME [--role admin|focal_point|auditor] [--language en|fr|ar|am] (password on stdin)"
	if len(args) == 0 {
		return usageError{"user: missing subcommand; " + use}
	}
	sub := args[0]
	if sub != "add" && sub != "passwd" && sub != "disable" {
		return usageError{fmt.Sprintf("user: unknown subcommand %q; %s", sub, use)}
	}
	fs, configPath := storeFlagSet("user "+sub, stderr)
	role := fs.String("role", string(refbridge.RoleFocalPoint), "role of a new account: admin, focal_point or auditor")
	language := fs.String("language", "en", "interface language of a new account: en, fr, ar or am")
	// Flags may come before or after NAME.
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usageError{"user " + sub + ": NAME is required; " + use}
	}
	name := rest[0]
	if err := parseFlags(fs, rest[1:]); err != nil {
		return err
	}
	db, _, err := openStoreFromConfig(ctx, *configPath, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	switch sub {
	case "add":
		pw, err := readPassword(stdin)
		if err != nil {
			return err
		}
		if err := db.AddUser(ctx, name, refbridge.Role(*role), *language, pw); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "account %s added (%s)\n", name, *role)
	case "passwd":
		pw, err := readPassword(stdin)
		if err != nil {
			return err
		}
		if err := db.SetPassword(ctx, name, pw); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password of %s changed; its sessions ended\n", name)
	case "disable":
		if err := db.SetUserDisabled(ctx, name, true); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "account %s disabled; its sessions ended\n", name)
	}
	return nil
}

// readPassword reads the first line of stdin, without its line ending.
func readPassword(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("no password on stdin (give it as the first line)")
	}
	return pw, nil
}
