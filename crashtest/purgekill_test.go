package crashtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"refbridge"
	"refbridge/store"
)

// TestKillDuringPurge: with a retention, finished exchanges keep their
// payloads until the scheduled purge (which runs at every start). The
// bridge is SIGKILLed again and again while that purge runs, until it has
// finished. Then every payload is gone, each exchange has exactly one
// "purged" audit event, the audit chain verifies, and no personal value is
// left in the store's files.
func TestKillDuringPurge(t *testing.T) {
	t.Parallel()
	s := seed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w := newWorld(t, worldConfig{Seed: s, PollInterval: time.Minute, PollOverlap: time.Minute, Workers: 16, MaxAttempts: 100,
		PeerTimeout: 2 * time.Second, Retention: time.Second})
	w.start()
	w.waitHealthy(30 * time.Second)

	const n = 4000
	numbers := sendInterventions(ctx, t, w, 20_000, n)
	waitCallbacks(ctx, t, w, numbers)
	w.stop()
	time.Sleep(time.Second) // past the retention
	if got := purgedCount(ctx, t, w); got > n-2*500 {
		t.Fatalf("sanity: %d of %d payloads purged already (by the purge at start); too few left to interrupt", got, n)
	}

	kills, midway := 0, 0
	for attempt := 0; attempt < 200; attempt++ {
		w.start()
		time.Sleep(50*time.Millisecond + time.Duration(attempt)*10*time.Millisecond)
		w.kill()
		kills++
		got := purgedCount(ctx, t, w)
		if got > 0 && got < n {
			midway++
		}
		if got == n {
			break
		}
	}
	if got := purgedCount(ctx, t, w); got != n {
		t.Fatalf("after %d kills %d of %d payloads purged", kills, got, n)
	}
	if midway == 0 {
		t.Fatal("sanity: no kill landed while the purge was half-way through; the test proved nothing")
	}

	db := w.openStore(ctx)
	defer db.Close()
	events, _, err := db.AuditEvents(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	purged := map[string]int{}
	for _, ev := range events {
		if ev.Kind == refbridge.AuditPurged {
			purged[ev.ExchangeID]++
		}
	}
	if len(purged) != n {
		t.Errorf("%d exchanges have a purged event, want %d", len(purged), n)
	}
	for id, c := range purged {
		if c != 1 {
			t.Errorf("exchange %s has %d purged events, want 1", id, c)
		}
	}
	if _, err := db.VerifyAudit(ctx); err != nil {
		t.Errorf("audit chain after kills during purge: %v", err)
	}
	if _, err := db.SQL().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	files := storeBytes(t, w.dbPath)
	for _, p := range []string{"Testchild", "Fixture", "2014-03-15", "+000000000001", "Synthetic comment"} {
		if strings.Contains(string(files), p) {
			t.Errorf("the store's files still hold %q", p)
		}
	}
	t.Logf("%d payloads purged through %d SIGKILLs (%d half-way through the purge)", n, kills, midway)
}

// purgedCount is how many exchanges no longer hold a payload.
func purgedCount(ctx context.Context, t *testing.T, w *world) int {
	t.Helper()
	db := w.openStore(ctx)
	defer db.Close()
	var c int
	if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM exchange WHERE payload IS NULL AND purged_at IS NOT NULL`).Scan(&c); err != nil {
		t.Fatal(err)
	}
	return c
}
