package crashtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"refbridge"
	"refbridge/dtp/dtptest"
	"refbridge/fault"
	"refbridge/store"
)

// TestKillDuringKeyRotation: with a store full of payloads waiting for a
// peer that is down, a new encryption key is added and `refbridge keys
// rotate` is SIGKILLed at random moments, then run to the end. Afterwards
// every payload is under the new key (the old one can be removed and the
// bridge still opens its store), none was lost or corrupted on the way, and
// when the peer comes back every referral is delivered exactly once.
func TestKillDuringKeyRotation(t *testing.T) {
	t.Parallel()
	s := seed(t)
	rng := rand.New(rand.NewPCG(s, 0x6b657973))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w := newWorld(t, worldConfig{Seed: s, PollInterval: time.Second, PollOverlap: time.Minute, Workers: 8, MaxAttempts: 1000,
		PeerTimeout: 2 * time.Second})
	// Primero down: every intervention stays mapped, its payload at rest.
	w.primero.Faults().Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{503}})
	w.start()
	w.waitHealthy(30 * time.Second)

	const n = 1500
	numbers := sendInterventions(ctx, t, w, 10_000, n)
	w.stop()

	oldKey := w.keys.Current()
	sealed := payloadKeys(ctx, t, w, false)
	if len(sealed) != 1 || sealed[oldKey] != n {
		t.Fatalf("before rotation: payload keys %v, want %d under %s", sealed, n, oldKey)
	}

	// A new first line in the keyring: new payloads are sealed under it,
	// and rotation re-encrypts the old ones.
	keysFile := filepath.Join(w.dir, "keys")
	old, err := os.ReadFile(keysFile)
	if err != nil {
		t.Fatal(err)
	}
	newRing, newText, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	newKey := newRing.Current()
	if err := os.WriteFile(keysFile, []byte(newText+string(old)), 0o600); err != nil {
		t.Fatal(err)
	}
	if w.keys, err = store.ParseKeyring(newText + string(old)); err != nil {
		t.Fatal(err)
	}

	kills, midway := 0, 0
	for attempt := 0; (kills < 5 || midway == 0) && attempt < 200; attempt++ {
		cmd := exec.Command(w.bin, "keys", "rotate", "--config", w.replicas[0].config)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Later and later kills, with jitter, so that some land while
		// the rotation is half-way through its batches.
		time.Sleep(time.Duration(attempt)*time.Millisecond + time.Duration(rng.Int64N(int64(time.Millisecond))))
		cmd.Process.Kill()
		if err := cmd.Wait(); err != nil && strings.Contains(err.Error(), "killed") {
			kills++
		}
		// Whatever the moment, the store opens, and every payload is under
		// one of the two keys.
		got := payloadKeys(ctx, t, w, false)
		if got[oldKey]+got[newKey] != n {
			t.Fatalf("after a kill: payload keys %v, want %d in all", got, n)
		}
		if got[newKey] > 0 && got[newKey] < n {
			midway++
		}
		if got[newKey] == n {
			break // it finished; nothing more to interrupt
		}
	}
	if midway == 0 {
		t.Fatal("sanity: keys rotate was never killed half-way through; the test proved nothing")
	}
	out, err := exec.Command(w.bin, "keys", "rotate", "--config", w.replicas[0].config).CombinedOutput()
	if err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	if got := payloadKeys(ctx, t, w, true); got[newKey] != n {
		t.Fatalf("after rotation: payload keys %v, want all %d under %s", got, n, newKey)
	}

	// The old key is removed: the bridge opens its store and delivers.
	if err := os.WriteFile(keysFile, []byte(newText), 0o600); err != nil {
		t.Fatal(err)
	}
	w.keys = newRing
	w.primero.Faults().Clear()
	w.start()
	waitCallbacks(ctx, t, w, numbers)
	for _, num := range numbers {
		if c := w.dtp.StatusCounts()[dtpStatusKey(num)]; c != 1 {
			t.Errorf("intervention %s: %d callbacks, want 1", num, c)
		}
	}
	t.Logf("%d payloads re-encrypted under a new key through %d SIGKILLs of keys rotate (%d half-way through), then delivered once each", n, kills, midway)
}

// payloadKeys counts the stored payloads by the key id sealing them; with
// readAll it also reads every exchange back (every payload must decrypt).
func payloadKeys(ctx context.Context, t *testing.T, w *world, readAll bool) map[string]int {
	t.Helper()
	db := w.openStore(ctx)
	defer db.Close()
	rows, err := db.SQL().QueryContext(ctx, `SELECT key_id, COUNT(*) FROM exchange WHERE payload IS NOT NULL GROUP BY key_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var c int
		if err := rows.Scan(&id, &c); err != nil {
			t.Fatal(err)
		}
		out[id] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !readAll {
		return out
	}
	all, _, err := db.List(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range all {
		if _, err := db.Get(ctx, ex.ID); err != nil {
			t.Fatalf("exchange %s no longer reads: %v", ex.ID, err)
		}
	}
	return out
}

// dtpStatusKey is the Pending Acknowledgement callback of an intervention.
func dtpStatusKey(number string) dtptest.StatusKey {
	return dtptest.StatusKey{InterventionNumber: number, Status: refbridge.StatusPendingAcknowledgement}
}

// sendInterventions posts n valid interventions for new children, numbered
// from first, in batches of 100 until the bridge answers each, and returns
// their intervention numbers.
func sendInterventions(ctx context.Context, t *testing.T, w *world, first, n int) []string {
	t.Helper()
	var numbers []string
	for i := 0; i < n; i += 100 {
		var batch []refbridge.Intervention
		for j := i; j < min(n, i+100); j++ {
			iv := rotationIntervention(t, first+j)
			batch = append(batch, iv)
			numbers = append(numbers, iv.InterventionNumber)
		}
		if _, err := (&sender{w: w}).interventions(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	return numbers
}

// waitCallbacks waits until every intervention's Pending Acknowledgement
// callback has reached DTP.
func waitCallbacks(ctx context.Context, t *testing.T, w *world, numbers []string) {
	t.Helper()
	ok, why := waitUntil(ctx, 250*time.Millisecond, func() (bool, string) {
		counts, missing := w.dtp.StatusCounts(), 0
		for _, num := range numbers {
			if counts[dtpStatusKey(num)] == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d callbacks missing", missing, len(numbers))
	})
	if !ok {
		t.Fatalf("%s; log tail:\n%s", why, w.logTail(20))
	}
}
