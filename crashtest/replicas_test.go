package crashtest

import (
	"bytes"
	"context"
	"database/sql"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, to read River's leader table

	"refbridge/cmd/refbridge/refbridgetest"
)

var (
	reducedReplicaSize = crashSize{referrals: 300, kills: 12, minGap: 300 * time.Millisecond, maxGap: 1500 * time.Millisecond,
		pace: 12 * time.Second, budget: 180 * time.Second}
	fullReplicaSize = crashSize{referrals: 5000, kills: 30, minGap: 1 * time.Second, maxGap: 5 * time.Second,
		pace: 90 * time.Second, budget: 40 * time.Minute}
)

// TestReplicasCrashExactlyOnce runs the crash suite's traffic through three
// `refbridge serve` replicas sharing one PostgreSQL behind a load balancer,
// SIGKILLing a random replica (the poll leader among them) at random
// moments and restarting it after a while, with both peers failing as in
// peerFaults. Exactly-once effects, re-sends only for kills and lost answers,
// no exchange left moving must hold as for one process, and River's leadership must
// move to a surviving replica: the test measures how long that takes.
func TestReplicasCrashExactlyOnce(t *testing.T) {
	t.Parallel()
	dsn := refbridgetest.PostgresDB(t)
	size := reducedReplicaSize
	if *fullSize {
		size = fullReplicaSize
	}
	s := seed(t)
	rng := mrand.New(mrand.NewPCG(s, 0x72706c73))
	ctx, cancel := context.WithTimeout(context.Background(), size.budget)
	defer cancel()

	w := newWorld(t, worldConfig{Seed: s, PollInterval: time.Second, PollOverlap: time.Minute, Workers: 8, MaxAttempts: 100,
		PeerTimeout: 2 * time.Second, Replicas: 3, Postgres: dsn, JobTimeout: 15 * time.Second})
	w.primero.Faults().Set("*", peerFaults)
	w.dtp.Faults().Set("*", peerFaults)
	tr := newTraffic(w, size.referrals, s, size.pace)
	w.start()
	w.waitHealthy(60 * time.Second)
	leaders := watchLeaders(ctx, t, dsn)
	start := time.Now()

	trafficDone := make(chan struct{})
	go func() { defer close(trafficDone); tr.run(ctx) }()

	// A killed replica comes back after a while, so that at times only
	// one or two serve, and the one killed may be the leader.
	var restarts sync.WaitGroup
	for k := 1; k <= size.kills; k++ {
		sleep(ctx, size.minGap+time.Duration(rng.Int64N(int64(size.maxGap-size.minGap))))
		if ctx.Err() != nil {
			t.Fatalf("budget spent after %d kills", k-1)
		}
		for !w.anyRunning(2) { // keep at least one replica serving
			sleep(ctx, 100*time.Millisecond)
		}
		i := w.kill()
		down := time.Duration(rng.Int64N(int64(3 * time.Second)))
		restarts.Go(func() {
			sleep(ctx, down)
			w.startReplica(i)
		})
	}
	restarts.Wait()
	killPhase := time.Since(start)
	// A killed leader's lease runs out before another replica takes over.
	killEnd := time.Now().Add(30 * time.Second)
	awaitTraffic(ctx, t, tr, trafficDone)

	primeroFaults, dtpFaults := w.primero.Faults().Injected("*"), w.dtp.Faults().Injected("*")
	dtpLost := w.dtp.Faults().AfterEffect()
	w.primero.Faults().Clear()
	w.dtp.Faults().Clear()
	settle(ctx, t, w, tr)
	exchanges := w.exchanges(ctx)
	o := tr.observe()
	changes := leaders.stop()

	posts, redeliveries, outcomes := tr.send.stats()
	resends := resendsAtDTP(o)
	t.Logf("%d referrals (F1 %d, F2 %d, F1d %d, F2d %d) through 3 replicas in %s; %d kills during %s, %d starts; faults injected: primero %d, dtp %d (%d answers lost after DTP acted); "+
		"DTP posts %d, re-delivered %d (outcomes %v); re-sends at DTP %d %v",
		len(tr.ivs)+len(tr.refs)+tr.f1d+tr.f2d, len(tr.ivs), len(tr.refs), tr.f1d, tr.f2d, time.Since(start).Round(time.Millisecond),
		w.kills, killPhase.Round(time.Millisecond), w.starts, primeroFaults, dtpFaults, dtpLost, posts, redeliveries, outcomes, total(resends), resends)

	t.Run("effects exactly once", func(t *testing.T) { checkEffects(t, tr, o) })
	t.Run("re-sends only where an answer was lost", func(t *testing.T) { checkResends(t, resends, w.kills, dtpLost) })
	t.Run("no exchange left moving", func(t *testing.T) { checkStore(t, tr, exchanges) })
	t.Run("leadership moves", func(t *testing.T) {
		// Leaders elected while replicas were being killed (settle's
		// graceful stops come later and hand leadership over at once).
		kills := w.killTimes()
		var gaps []time.Duration
		for _, c := range changes[1:] {
			if c.at.After(killEnd) {
				break
			}
			j, _ := slices.BinarySearchFunc(kills, c.at, func(k, at time.Time) int { return k.Compare(at) })
			if j > 0 {
				gaps = append(gaps, c.at.Sub(kills[j-1]).Round(100*time.Millisecond))
			}
		}
		if len(gaps) == 0 {
			t.Fatalf("the poll leader never moved during %d kills (leaders seen in the whole run: %d)", w.kills, len(changes))
		}
		slices.Sort(gaps)
		t.Logf("%d new leaders elected during the kills, %v after the kill before each (sorted)", len(gaps), gaps)
	})
	t.Run("no personal data at rest", func(t *testing.T) { checkNoPersonalDataPostgres(t, w, tr, dsn) })
}

// anyRunning reports whether at least n replicas are running.
func (w *world) anyRunning(n int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	up := 0
	for _, rep := range w.replicas {
		if rep.proc != nil {
			up++
		}
	}
	return up >= n
}

// startReplica starts replica i unless it already runs.
func (w *world) startReplica(i int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.replicas[i].proc == nil {
		w.startLocked(i)
	}
}

// leaderChange is when a River client first showed as the elected leader.
type leaderChange struct {
	id string
	at time.Time
}

// leaderWatch samples River's leader table.
type leaderWatch struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	changes []leaderChange
}

// watchLeaders records every change of River's elected leader (the client
// that runs the pollers), sampling every 100 ms until stop.
func watchLeaders(ctx context.Context, t *testing.T, dsn string) *leaderWatch {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	lw := &leaderWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(lw.done)
		defer db.Close()
		for ctx.Err() == nil {
			var id string
			if err := db.QueryRowContext(ctx, `SELECT leader_id FROM river_leader LIMIT 1`).Scan(&id); err == nil {
				lw.mu.Lock()
				if n := len(lw.changes); n == 0 || lw.changes[n-1].id != id {
					lw.changes = append(lw.changes, leaderChange{id: id, at: time.Now()})
				}
				lw.mu.Unlock()
			}
			sleep(ctx, 100*time.Millisecond)
		}
	}()
	return lw
}

func (lw *leaderWatch) stop() []leaderChange {
	lw.cancel()
	<-lw.done
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return slices.Clone(lw.changes)
}

// checkNoPersonalDataPostgres dumps the whole database once the run is over
// and looks for the personal strings the traffic sent: payloads must have
// been purged as their exchanges ended, and nothing else may hold them. The
// replicas' logs must not carry them either.
func checkNoPersonalDataPostgres(t *testing.T, w *world, tr *traffic, dsn string) {
	t.Helper()
	dump, err := exec.Command("pg_dump", "--data-only", "--dbname", dsn).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if !bytes.Contains(dump, []byte("COPY public.exchange")) {
		t.Fatal("sanity: the dump holds no exchange table; the scan would prove nothing")
	}
	logs, err := os.ReadFile(w.logPath)
	if err != nil {
		t.Fatal(err)
	}
	personal := tr.personalStrings()
	for what, data := range map[string][]byte{"the database": dump, "the replicas' logs": logs} {
		for _, s := range personal {
			if i := bytes.Index(data, []byte(s)); i >= 0 {
				t.Errorf("%s holds personal data %q (at byte %d)", what, s, i)
			}
		}
	}
	t.Logf("scanned a %d-byte dump and %d bytes of logs for %d personal strings", len(dump), len(logs), len(personal))
}
