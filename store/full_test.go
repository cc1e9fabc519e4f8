package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"

	"refbridge"
	"refbridge/internal/syncbuf"
)

func TestIsDiskFull(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"ENOSPC from the file system", fmt.Errorf("store: %w", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}), true},
		{"PostgreSQL disk_full", fmt.Errorf("commit: %w", &pgconn.PgError{Code: "53100"}), true},
		{"PostgreSQL other", &pgconn.PgError{Code: "40001"}, false},
		{"SQLite's words only", errors.New("database or disk is full (13)"), true},
		{"busy", errors.New("database is locked (5)"), false},
		{"cancelled", context.Canceled, false},
	} {
		if got := isDiskFull(tc.err); got != tc.want {
			t.Errorf("%s: isDiskFull(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestStoreFull makes SQLite itself run out of room (max_page_count at
// the file's size: SQLITE_FULL, "database or disk is full", as on a full
// disk): a write fails with EStoreFull, its driver error kept as the
// cause, nothing stored; Ping reports the store full; the log says "disk
// full" once, with no personal data; once there is room the same write
// succeeds and Ping is well again. Without writes, Ping stops reporting
// full after fullHold.
func TestStoreFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys, _, err := GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	db, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "refbridge.db"), Keys: keys,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	const secret = "Fullchild Okwera"
	items := make([]refbridge.Inbound, 20)
	for i := range items {
		items[i] = refbridge.Inbound{Flow: refbridge.FlowIntervention, Key: fmt.Sprintf("CRS-26-PRTITV-%07d", i), ContentHash: "h",
			Payload: []byte(`{"name":"` + secret + `","pad":"` + strings.Repeat("x", 16<<10) + `"}`)}
	}
	var pages int
	if err := db.SQL().QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err = db.Receive(ctx, items)
		var se *sqlite.Error
		if refbridge.ErrorCodeOf(err) != refbridge.EStoreFull || !errors.As(err, &se) || !refbridge.IsRetryable(err) {
			t.Fatalf("Receive with no room: %v (code %q), want a retryable %q keeping SQLite's error", err, refbridge.ErrorCodeOf(err), refbridge.EStoreFull)
		}
	}
	if err := db.Ping(ctx); refbridge.ErrorCodeOf(err) != refbridge.EStoreFull {
		t.Fatalf("Ping after a write failed for lack of room: %v, want %q", err, refbridge.EStoreFull)
	}
	if all, _, err := db.List(ctx, Filter{}); err != nil || len(all) != 0 {
		t.Fatalf("after the failed Receive: %d exchanges (%v), want none", len(all), err)
	}
	if n := strings.Count(logs.String(), "disk full"); n != 1 {
		t.Errorf("%d log lines say disk full, want 1 (at the change): %s", n, logs.String())
	}

	if _, err := db.SQL().ExecContext(ctx, "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Receive(ctx, items); err != nil {
		t.Fatalf("Receive with room again: %v", err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("Ping once a write succeeded: %v", err)
	}
	if !strings.Contains(logs.String(), "writes succeed again") {
		t.Errorf("the log does not say writes succeed again: %s", logs.String())
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the log holds personal data: %s", logs.String())
	}

	// No write since the failure: after fullHold Ping no longer says full
	// (a node taken out of rotation must be tried again).
	db.full.since.Store(time.Now().Add(-fullHold + time.Second).UnixNano())
	if err := db.Ping(ctx); refbridge.ErrorCodeOf(err) != refbridge.EStoreFull {
		t.Fatalf("Ping within fullHold of a failure: %v, want %q", err, refbridge.EStoreFull)
	}
	db.full.since.Store(time.Now().Add(-fullHold - time.Second).UnixNano())
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("Ping fullHold after the last failure: %v, want nil", err)
	}
}
