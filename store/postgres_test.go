package store_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for the admin connection
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"refbridge"
	"refbridge/store"
	"refbridge/store/storetest"
)

// postgresEnv names the PostgreSQL server the tests use, as a URL whose
// user may create and drop databases.
const postgresEnv = "REFBRIDGE_TEST_POSTGRES"

// pgServer is the server the PostgreSQL tests make their databases on.
type pgServer struct {
	base  url.URL // postgresEnv's URL; each database swaps in its own path
	admin *sql.DB // connected to base's database, for CREATE/DROP DATABASE
}

// needPostgres connects to the server postgresEnv names. Unset, the test is
// skipped; set but unreachable, it fails: CI sets it, and a suite that
// silently skipped there would prove nothing.
func needPostgres(t *testing.T) *pgServer {
	t.Helper()
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		t.Skipf("%s is unset; to run the PostgreSQL store tests: %s='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' go test ./store/...",
			postgresEnv, postgresEnv)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s is not a URL", postgresEnv)
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("%s: %v", postgresEnv, err)
	}
	t.Cleanup(func() { admin.Close() })
	admin.SetMaxOpenConns(4)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("%s is set but PostgreSQL at %s does not answer: %v", postgresEnv, u.Host, err)
	}
	return &pgServer{base: *u, admin: admin}
}

// database creates an empty database, dropped when t ends, and returns its URL.
func (s *pgServer) database(t *testing.T) string {
	t.Helper()
	name := "refbridge_test_" + randomHex(t)
	if _, err := s.admin.Exec(`CREATE DATABASE ` + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		// FORCE ends the connections of a store a failed test left open.
		if _, err := s.admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u := s.base
	u.Path = "/" + name
	return u.String()
}

// open is the conformance suite's opener: a fresh database per store.
func (s *pgServer) open(t *testing.T, cfg store.Config) (*store.DB, error) {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = s.database(t)
	}
	return store.Open(context.Background(), cfg)
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestPostgres(t *testing.T) {
	t.Parallel()

	srv := needPostgres(t)
	storetest.Run(t, srv.open)
}

// replicas opens n stores on one fresh database all at once, as n refbridge
// processes starting together would: their migrations race too.
func (s *pgServer) replicas(t *testing.T, n int, cfg store.Config) []*store.DB {
	t.Helper()
	cfg.Path = s.database(t)
	dbs := make([]*store.DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { dbs[i], errs[i] = store.Open(context.Background(), cfg) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("replica %d: Open: %v", i, errs[i])
		}
		db := dbs[i]
		t.Cleanup(func() { db.Close() })
	}
	return dbs
}

// concurrently runs work on every replica in workers goroutines each, all
// released at once, and fails the test on any error.
func concurrently(t *testing.T, reps []*store.DB, workers int, work func(db *store.DB, rep, w int) error) {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for r, db := range reps {
		for w := range workers {
			wg.Go(func() {
				<-start
				if err := work(db, r, w); err != nil {
					t.Errorf("replica %d worker %d: %v", r, w, err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// checkChain checks, from every replica, that the audit chain verifies with
// want events whose seqs run 1…want, each once.
func checkChain(t *testing.T, reps []*store.DB, want int) {
	t.Helper()
	ctx := context.Background()
	for r, db := range reps {
		n, err := db.VerifyAudit(ctx)
		if err != nil || n != want {
			t.Fatalf("replica %d: VerifyAudit = %d, %v; want %d intact", r, n, err, want)
		}
	}
	evs, total, err := reps[0].AuditEvents(ctx, store.AuditFilter{})
	if err != nil || total != want || len(evs) != want {
		t.Fatalf("AuditEvents: %d of %d, %v; want %d", len(evs), total, err, want)
	}
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: seqs must be unique and contiguous", i, ev.Seq)
		}
	}
	var rows, distinct int
	var maxSeq sql.NullInt64
	if err := reps[0].SQL().QueryRow(`SELECT COUNT(*), COUNT(DISTINCT seq), MAX(seq) FROM audit_events`).Scan(&rows, &distinct, &maxSeq); err != nil {
		t.Fatal(err)
	}
	if rows != want || distinct != want || maxSeq.Int64 != int64(want) {
		t.Fatalf("audit_events: %d rows, %d distinct seqs, max %d; want %d of each", rows, distinct, maxSeq.Int64, want)
	}
}

func item(key, hash string) refbridge.Inbound {
	return refbridge.Inbound{Flow: refbridge.FlowIntervention, Key: key, ContentHash: hash,
		Payload: []byte(`{"progres_interventionnumber":"` + key + `","name":"Testchild"}`)}
}

// shuffled returns 0…n-1 in an order fixed by seed: replicas and workers
// meet the same rows in different orders, which is what deadlocks a wrong
// lock order.
func shuffled(n int, seed uint64) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	r := mathrand.New(mathrand.NewPCG(seed, 7))
	r.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// TestPostgresReplicas runs, against two stores open on one database (two
// refbridge replicas), the writes that only sharing a database can break:
// intake of the same keys, transitions of the same exchanges, and audit
// appends from every kind of writer. Afterwards each key has one exchange,
// each exchange moved once, and the audit chain is one total order.
func TestPostgresReplicas(t *testing.T) {
	t.Parallel()

	srv := needPostgres(t)
	const (
		replicas = 2
		workers  = 4
		keys     = 24
	)
	ctx := context.Background()
	key := func(i int) string { return fmt.Sprintf("IN-%03d", i) }
	tests := []struct {
		name string
		// run does the concurrent work and returns how many audit events it
		// must have left; it checks its own results.
		run func(t *testing.T, reps []*store.DB) int
	}{
		{"IntakeOfSameKeys", func(t *testing.T, reps []*store.DB) int {
			var mu sync.Mutex
			outcomes := map[string][]refbridge.Intake{}
			concurrently(t, reps, workers, func(db *store.DB, r, w int) error {
				order := shuffled(keys, uint64(r*workers+w))
				for b := 0; b < keys; b += 6 {
					var batch []refbridge.Inbound
					for _, i := range order[b : b+6] {
						batch = append(batch, item(key(i), "h1"))
					}
					got, err := db.Receive(ctx, batch)
					if err != nil {
						return err
					}
					mu.Lock()
					for i, in := range got {
						outcomes[batch[i].Key] = append(outcomes[batch[i].Key], in)
					}
					mu.Unlock()
				}
				return nil
			})
			for k, ins := range outcomes {
				accepted := 0
				for _, in := range ins {
					switch {
					case in.ExchangeID != ins[0].ExchangeID:
						t.Fatalf("key %s: two exchanges %s and %s", k, ins[0].ExchangeID, in.ExchangeID)
					case in.Outcome == refbridge.IntakeAccepted:
						accepted++
					case in.Outcome != refbridge.IntakeDuplicate:
						t.Fatalf("key %s: outcome %s, want accepted or duplicate", k, in.Outcome)
					}
				}
				if accepted != 1 || len(ins) != replicas*workers {
					t.Fatalf("key %s: %d accepted of %d intakes, want 1 of %d", k, accepted, len(ins), replicas*workers)
				}
			}
			wantExchanges(t, reps[1], keys)
			return keys
		}},
		{"IntakeOfSameKeysNewContent", func(t *testing.T, reps []*store.DB) int {
			var mu sync.Mutex
			counts := map[refbridge.IntakeOutcome]int{}
			concurrently(t, reps, workers, func(db *store.DB, r, w int) error {
				// Every worker brings its own content: after the first, each
				// intake of a key is an update.
				hash := fmt.Sprintf("h-%d-%d", r, w)
				for _, i := range shuffled(keys, uint64(100+r*workers+w)) {
					got, err := db.Receive(ctx, []refbridge.Inbound{item(key(i), hash)})
					if err != nil {
						return err
					}
					mu.Lock()
					counts[got[0].Outcome]++
					mu.Unlock()
				}
				return nil
			})
			if counts[refbridge.IntakeAccepted] != keys || counts[refbridge.IntakeUpdated] != keys*(replicas*workers-1) {
				t.Fatalf("outcomes %v, want %d accepted and the rest updated", counts, keys)
			}
			wantExchanges(t, reps[0], keys)
			return keys * replicas * workers
		}},
		{"TransitionsOfSameExchanges", func(t *testing.T, reps []*store.DB) int {
			var batch []refbridge.Inbound
			for i := range keys {
				batch = append(batch, item(key(i), "h1"))
			}
			intakes, err := reps[0].Receive(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			wins := map[string]int{}
			concurrently(t, reps, workers, func(db *store.DB, r, w int) error {
				for _, i := range shuffled(keys, uint64(200+r*workers+w)) {
					id := intakes[i].ExchangeID
					_, err := db.Transition(ctx, id, store.Change{From: []refbridge.ExchangeState{refbridge.StateReceived},
						To: refbridge.StateHeld, Reason: "consent_missing", Attempted: true, PeerRef: fmt.Sprintf("replica-%d", r)})
					switch refbridge.ErrorCodeOf(err) {
					case "":
						mu.Lock()
						wins[id]++
						mu.Unlock()
					case refbridge.EConflict:
					default:
						return err
					}
				}
				return nil
			})
			for _, in := range intakes {
				ex, err := reps[1].Get(ctx, in.ExchangeID)
				if err != nil {
					t.Fatal(err)
				}
				if wins[in.ExchangeID] != 1 || ex.Attempts != 1 || ex.State != refbridge.StateHeld {
					t.Fatalf("exchange %s: %d wins, %d attempts, %s; want one move", in.ExchangeID, wins[in.ExchangeID], ex.Attempts, ex.State)
				}
			}
			return 2 * keys // received and held
		}},
		{"AuditFromEveryWriter", func(t *testing.T, reps []*store.DB) int {
			contested, err := reps[0].Receive(ctx, []refbridge.Inbound{item("IN-contested", "h1")})
			if err != nil {
				t.Fatal(err)
			}
			const rounds = 4
			var mu sync.Mutex
			wins := 0
			concurrently(t, reps, workers, func(db *store.DB, r, w int) error {
				for i := range rounds {
					got, err := db.Receive(ctx, []refbridge.Inbound{item(fmt.Sprintf("IN-%d-%d-%d", r, w, i), "h1")})
					if err != nil {
						return err
					}
					id := got[0].ExchangeID
					if err := db.AppendAudit(ctx, refbridge.AuditEvent{Kind: refbridge.AuditViewed, ExchangeID: id, Actor: "focal_point"}); err != nil {
						return err
					}
					// done: delivered and purged (Retention 0).
					if _, err := db.Transition(ctx, id, store.Change{To: refbridge.StateDone, Actor: "progres_requester_7"}); err != nil {
						return err
					}
					// Writers that append nothing here still take the chain's
					// lock first; they must not deadlock with those that do.
					if _, err := db.Purge(ctx); err != nil {
						return err
					}
					if _, err := db.Requeue(ctx, store.Filter{State: refbridge.StateReceived}); err != nil {
						return err
					}
					if _, err := db.RotateKeys(ctx); err != nil {
						return err
					}
					if err := db.SetCursor(ctx, "f2", fmt.Sprintf("%d-%d-%d", r, w, i)); err != nil {
						return err
					}
				}
				_, err := db.Transition(ctx, contested[0].ExchangeID, store.Change{From: []refbridge.ExchangeState{refbridge.StateReceived},
					To: refbridge.StateHeld, Reason: "consent_missing"})
				switch refbridge.ErrorCodeOf(err) {
				case "":
					mu.Lock()
					wins++
					mu.Unlock()
				case refbridge.EConflict:
				default:
					return err
				}
				return nil
			})
			if wins != 1 {
				t.Fatalf("%d workers moved the contested exchange, want 1", wins)
			}
			// Per round: received, viewed, delivered, purged; plus the
			// contested exchange's received and held.
			return replicas*workers*rounds*4 + 2
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keys, _, err := store.GenerateKeyring()
			if err != nil {
				t.Fatal(err)
			}
			reps := srv.replicas(t, replicas, store.Config{Keys: keys})
			want := tt.run(t, reps)
			checkChain(t, reps, want)
		})
	}
}

// wantExchanges checks the store holds n exchanges, each with one job.
func wantExchanges(t *testing.T, db *store.DB, n int) {
	t.Helper()
	ctx := context.Background()
	if _, total, err := db.List(ctx, store.Filter{}); err != nil || total != n {
		t.Fatalf("%d exchanges, %v; want %d", total, err, n)
	}
	inspect, err := db.NewQueue(store.QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := inspect.JobList(ctx, river.NewJobListParams().First(10000))
	if err != nil {
		t.Fatal(err)
	}
	perExchange := map[string]int{}
	for _, j := range res.Jobs {
		var args store.ProcessExchange
		if err := json.Unmarshal(j.EncodedArgs, &args); err != nil {
			t.Fatal(err)
		}
		perExchange[args.ExchangeID]++
	}
	for id, k := range perExchange {
		if k != 1 {
			t.Fatalf("exchange %s has %d jobs, want 1", id, k)
		}
	}
	if len(perExchange) != n {
		t.Fatalf("%d exchanges have jobs, want %d", len(perExchange), n)
	}
}

// TestPostgresReplicasShareQueue runs River workers in two replicas on one
// database: every exchange is worked once, by one of them, and its job is
// completed in the transaction of its last change.
func TestPostgresReplicasShareQueue(t *testing.T) {
	t.Parallel()

	srv := needPostgres(t)
	ctx := context.Background()
	keys, _, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	reps := srv.replicas(t, 2, store.Config{Keys: keys})
	const n = 60
	var mu sync.Mutex
	worked := map[string][]int{} // exchange → replicas that worked it
	done := make(chan struct{}, n)
	for r, db := range reps {
		workers := river.NewWorkers()
		river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[store.ProcessExchange]) error {
			_, err := db.Transition(ctx, job.Args.ExchangeID, store.Change{From: []refbridge.ExchangeState{refbridge.StateReceived},
				To: refbridge.StateDone, CompleteJob: job})
			if err != nil {
				return err
			}
			mu.Lock()
			worked[job.Args.ExchangeID] = append(worked[job.Args.ExchangeID], r)
			mu.Unlock()
			done <- struct{}{}
			return nil
		}))
		q, err := db.NewQueue(store.QueueConfig{Workers: workers, MaxWorkers: 4, JobTimeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			q.Stop(stopCtx)
		})
	}
	var batch []refbridge.Inbound
	for i := range n {
		batch = append(batch, item(fmt.Sprintf("IN-%03d", i), "h1"))
	}
	// Half the intake on each replica.
	intakes := make([]refbridge.Intake, 0, n)
	for r, db := range reps {
		got, err := db.Receive(ctx, batch[r*n/2:(r+1)*n/2])
		if err != nil {
			t.Fatal(err)
		}
		intakes = append(intakes, got...)
	}
	for range n {
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatalf("only %d of %d exchanges worked in 60s", len(worked), n)
		}
	}
	byReplica := map[int]int{}
	for _, in := range intakes {
		rs := worked[in.ExchangeID]
		if len(rs) != 1 {
			t.Fatalf("exchange %s worked by replicas %v, want exactly one", in.ExchangeID, rs)
		}
		byReplica[rs[0]]++
	}
	t.Logf("exchanges worked per replica: %v", byReplica)
	inspect, err := reps[0].NewQueue(store.QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := inspect.JobList(ctx, river.NewJobListParams().States(rivertype.JobStateCompleted).First(1000))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Jobs) != n {
		t.Fatalf("%d jobs completed, want %d", len(res.Jobs), n)
	}
	checkChain(t, reps, 3*n) // received, delivered, purged
}

// TestPostgresOpenErrors: a store that cannot be opened says where it
// looked (host, port, database) and never repeats the password.
func TestPostgresOpenErrors(t *testing.T) {
	t.Parallel()

	const secret = "s3cret-Passw0rd"
	tests := []struct {
		name string
		path string
		want string
	}{
		// Port 1 on loopback refuses at once; no server is needed.
		{"Unreachable", "postgres://refbridge:" + secret + "@127.0.0.1:1/refbridge_nodb?sslmode=disable&connect_timeout=5", "open postgres 127.0.0.1:1/refbridge_nodb"},
		{"PostgresqlScheme", "postgresql://refbridge:" + secret + "@127.0.0.1:1/other?sslmode=disable", "open postgres 127.0.0.1:1/other"},
		{"Malformed", "postgres://refbridge:" + secret + "@127.0.0.1:port/x", "not a valid PostgreSQL URL"},
		{"UnknownSetting", "postgres://refbridge:" + secret + "@127.0.0.1:1/x?sslmode=sometimes", "not a valid PostgreSQL URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, err := store.Open(context.Background(), store.Config{Path: tt.path, Keys: newKeys(t)})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("err = %v: it repeats the password", err)
			}
		})
	}
}

// TestPostgresSchema: Open picks PostgreSQL for a URL, replicas opening a
// fresh database together all find the schema current, and the audit table
// refuses TRUNCATE too (it skips the row triggers the suite tests).
func TestPostgresSchema(t *testing.T) {
	t.Parallel()

	srv := needPostgres(t)
	ctx := context.Background()
	reps := srv.replicas(t, 4, store.Config{Keys: newKeys(t)})
	for r, db := range reps {
		if db.Dialect() != "postgres" {
			t.Fatalf("replica %d: dialect %q, want postgres", r, db.Dialect())
		}
		if ok, err := db.MigrationsCurrent(ctx); err != nil || !ok {
			t.Fatalf("replica %d: MigrationsCurrent = %v, %v", r, ok, err)
		}
	}
	// Each version once and none missing, whatever the number of migrations.
	var rows, distinct, latest int
	if err := reps[0].SQL().QueryRow(`SELECT COUNT(*), COUNT(DISTINCT version), MAX(version) FROM schema_migrations`).Scan(&rows, &distinct, &latest); err != nil ||
		rows != distinct || rows != latest || rows < 2 {
		t.Fatalf("schema_migrations holds %d rows (%d versions, latest %d), %v; want each migration once", rows, distinct, latest, err)
	}
	if _, err := reps[0].Receive(ctx, []refbridge.Inbound{item("IN-1", "h1")}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`TRUNCATE audit_events`, `DELETE FROM audit_anchor`, `UPDATE audit_events SET actor = 'x'`} {
		_, err := reps[1].SQL().Exec(q)
		if q == `DELETE FROM audit_anchor` {
			// The anchor is not append-only (it moves); removing it is
			// tampering that VerifyAudit reports, checked below.
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("%s: err = %v, want it refused as append-only", q, err)
		}
	}
	_, err := reps[0].VerifyAudit(ctx)
	if !strings.Contains(fmt.Sprint(err), "anchor") {
		t.Fatalf("VerifyAudit without the anchor: %v, want the anchor reported missing", err)
	}
}

// pgChildEnv carries the database URL to TestPostgresReplicaChild.
const pgChildEnv = "REFBRIDGE_STORE_PG_CHILD"

// TestPostgresDeadReplicaJobRescued kills (SIGKILL) a replica while it
// works a job. Unlike SQLite, Open on PostgreSQL must not take that job
// back (another replica might be working it); River's rescuer on a live
// replica retries it once RescueAfter has passed.
func TestPostgresDeadReplicaJobRescued(t *testing.T) {
	t.Parallel()

	if os.Getenv(pgChildEnv) != "" {
		t.Skip("parent only")
	}
	srv := needPostgres(t)
	ctx := context.Background()
	dsn := srv.database(t)
	dir := t.TempDir()
	_, keyText, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "keys")
	if err := os.WriteFile(keyFile, []byte(keyText), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPostgresReplicaChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), pgChildEnv+"="+dsn+" "+keyFile)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	running := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "RUNNING "); ok {
				running <- id
			}
		}
		close(running)
	}()
	var killedID string
	select {
	case id, ok := <-running:
		if !ok {
			cmd.Wait()
			t.Fatalf("child exited before running its job; stderr:\n%s", stderr.String())
		}
		killedID = id
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("child did not start its job; stderr:\n%s", stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killedAt := time.Now()

	keys, err := store.LoadKeyring(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, store.Config{Path: dsn, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	inspect, err := db.NewQueue(store.QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := inspect.JobList(ctx, river.NewJobListParams().First(10))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Jobs) != 1 || res.Jobs[0].State != rivertype.JobStateRunning {
		t.Fatalf("jobs after the replica died = %v, want its one job still running (Open recovers nothing on PostgreSQL)", res.Jobs)
	}

	attempts := make(chan int, 4)
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[store.ProcessExchange]) error {
		if _, err := db.Transition(ctx, job.Args.ExchangeID, store.Change{From: []refbridge.ExchangeState{refbridge.StateReceived},
			To: refbridge.StateDone, CompleteJob: job}); err != nil {
			return err
		}
		attempts <- job.Attempt
		return nil
	}))
	q, err := db.NewQueue(store.QueueConfig{Workers: workers, JobTimeout: time.Second, RescueAfter: time.Second,
		RetryPolicy: retryAtOnce{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q.Stop(stopCtx)
	})
	select {
	case a := <-attempts:
		if a != 2 {
			t.Fatalf("rescued job ran as attempt %d, want 2", a)
		}
		t.Logf("job of the killed replica rescued and worked %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	case <-time.After(90 * time.Second):
		t.Fatal("the killed replica's job was not rescued within 90s")
	}
	if ex, err := db.Get(ctx, killedID); err != nil || ex.State != refbridge.StateDone {
		t.Fatalf("exchange %s: %v, %v; want done", killedID, ex.State, err)
	}
}

// retryAtOnce schedules a retry immediately, so the test waits on the
// rescuer, not on River's backoff.
type retryAtOnce struct{}

func (retryAtOnce) NextRetry(*rivertype.JobRow) time.Time { return time.Now() }

// TestPostgresReplicaChild is the replica TestPostgresDeadReplicaJobRescued
// kills: it receives one item, works its job and hangs in it.
func TestPostgresReplicaChild(t *testing.T) {
	arg := os.Getenv(pgChildEnv)
	if arg == "" {
		t.Skip("run by TestPostgresDeadReplicaJobRescued")
	}
	dsn, keyFile, _ := strings.Cut(arg, " ")
	ctx := context.Background()
	keys, err := store.LoadKeyring(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, store.Config{Path: dsn, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Receive(ctx, []refbridge.Inbound{item("IN-1", "h1")}); err != nil {
		t.Fatal(err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[store.ProcessExchange]) error {
		fmt.Printf("RUNNING %s\n", job.Args.ExchangeID)
		<-ctx.Done() // hang until killed
		return ctx.Err()
	}))
	q, err := db.NewQueue(store.QueueConfig{Workers: workers, MaxWorkers: 1, JobTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Wait for SIGKILL, but not forever: a parent that died first must not
	// leave this process behind.
	time.Sleep(3 * time.Minute)
	t.Fatal("not killed within 3 minutes")
}
