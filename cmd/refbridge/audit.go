package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"refbridge"
	"refbridge/store"
)

// exportPage is how many events audit export reads per query.
const exportPage = 1000

// cmdAudit handles `audit verify` and `audit export` (DESIGN.md invariant 5).
// Both open the store, so, like migrate, they run with serve stopped.
func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "use: audit verify --config FILE, or audit export --config FILE --format csv|json [--since RFC3339]"
	if len(args) == 0 {
		return usageError{"audit: missing subcommand; " + use}
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:], stdout, stderr)
	case "export":
		return auditExport(ctx, args[1:], stdout, stderr)
	}
	return usageError{fmt.Sprintf("audit: unknown subcommand %q; %s", args[0], use)}
}

// auditVerify walks the chain; exit 0 with its length and last hash, or 1
// naming the first broken event.
func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	db, _, err := openConfiguredStore(ctx, "audit verify", args, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.VerifyAudit(ctx)
	if broken, ok := chainBreak(err); ok {
		fmt.Fprintf(stdout, "audit chain BROKEN: %s (%d events before it intact)\n", broken, n)
		return problemsFound{}
	}
	if err != nil {
		return err
	}
	head, err := eventAt(ctx, db, n)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "audit chain intact: %d events, last hash %s\n", n, head.Hash)
	return nil
}

// chainBreak describes the first broken event of a VerifyAudit error.
func chainBreak(err error) (string, bool) {
	var e *refbridge.Error
	if !errors.As(err, &e) || e.Code != refbridge.EInvalid || len(e.Problems) == 0 {
		return "", false
	}
	return fmt.Sprintf("%s [%s]", e.Message, e.Problems[0].Rule), true
}

// eventAt returns the n-th event of the chain (by position), or the genesis
// placeholder for n = 0.
func eventAt(ctx context.Context, db *store.DB, n int) (refbridge.AuditEvent, error) {
	if n <= 0 {
		return refbridge.AuditEvent{Hash: refbridge.AuditGenesisHash}, nil
	}
	evs, _, err := db.AuditEvents(ctx, store.AuditFilter{Offset: n - 1, Limit: 1})
	if err != nil {
		return refbridge.AuditEvent{}, err
	}
	if len(evs) == 0 {
		return refbridge.AuditEvent{}, fmt.Errorf("audit event at position %d vanished", n)
	}
	return evs[0], nil
}

// auditExport writes the events (from --since on) to stdout as CSV or a
// JSON array, for the agencies' accountability reviews, and the chain's
// final seq and hash to stderr: kept by the agencies, it is the anchor
// outside the database that a later full rewrite cannot match. The chain
// is verified first; a broken chain is still exported (the reviewers need
// it), named on stderr, and the command exits 1.
func auditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := storeFlagSet("audit export", stderr)
	format := fs.String("format", "csv", "output format: csv or json")
	sinceText := fs.String("since", "", "only events recorded at or after this time (RFC 3339)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "csv" && *format != "json" {
		return usageError{fmt.Sprintf("audit export: --format must be csv or json, not %q", *format)}
	}
	var since time.Time
	if *sinceText != "" {
		t, err := time.Parse(time.RFC3339, *sinceText)
		if err != nil {
			return usageError{fmt.Sprintf("audit export: --since %q is not an RFC 3339 time such as 2025-03-01T00:00:00Z", *sinceText)}
		}
		since = t
	}
	db, _, err := openStoreFromConfig(ctx, *cfgPath, stderr)
	if err != nil {
		return err
	}
	defer db.Close()

	intact, verr := db.VerifyAudit(ctx)
	broken, isBroken := chainBreak(verr)
	if verr != nil && !isBroken {
		return verr
	}

	w := newAuditWriter(*format, stdout)
	written, total := 0, 0
	for {
		evs, all, err := db.AuditEvents(ctx, store.AuditFilter{Since: since, Limit: exportPage, Offset: written})
		if err != nil {
			return err
		}
		total = all
		for _, ev := range evs {
			if err := w.write(ev); err != nil {
				return err
			}
		}
		written += len(evs)
		if len(evs) < exportPage {
			break
		}
	}
	if err := w.close(); err != nil {
		return err
	}
	if written != total {
		return fmt.Errorf("audit export: wrote %d events but %d match", written, total)
	}
	// The chain's end, whatever --since selected (serve is stopped: the
	// store's lock keeps anything from appending meanwhile).
	_, all, err := db.AuditEvents(ctx, store.AuditFilter{Limit: 1})
	if err != nil {
		return err
	}
	head, err := eventAt(ctx, db, all)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "audit export: %d events written; final event %d, final hash %s (keep it: the chain must still contain it later)\n",
		written, head.Seq, head.Hash)
	if isBroken {
		fmt.Fprintf(stderr, "audit export: the audit chain is BROKEN: %s (%d events before it intact)\n", broken, intact)
		return problemsFound{}
	}
	return nil
}

// auditWriter writes events in one export format.
type auditWriter struct {
	format string
	out    io.Writer
	csv    *csv.Writer
	n      int
}

func newAuditWriter(format string, out io.Writer) *auditWriter {
	w := &auditWriter{format: format, out: out}
	if format == "csv" {
		w.csv = csv.NewWriter(out)
	}
	return w
}

func (w *auditWriter) write(ev refbridge.AuditEvent) error {
	defer func() { w.n++ }()
	if w.csv != nil {
		if w.n == 0 {
			if err := w.csv.Write(refbridge.AuditCSVHeader()); err != nil {
				return err
			}
		}
		return w.csv.Write(ev.CSVRecord())
	}
	if ev.Fields == nil {
		ev.Fields = []string{}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	sep := ",\n"
	if w.n == 0 {
		sep = "[\n"
	}
	_, err = fmt.Fprintf(w.out, "%s%s", sep, b)
	return err
}

func (w *auditWriter) close() error {
	if w.csv != nil {
		if w.n == 0 {
			if err := w.csv.Write(refbridge.AuditCSVHeader()); err != nil {
				return err
			}
		}
		w.csv.Flush()
		return w.csv.Error()
	}
	end := "\n]\n"
	if w.n == 0 {
		end = "[]\n"
	}
	_, err := io.WriteString(w.out, end)
	return err
}
