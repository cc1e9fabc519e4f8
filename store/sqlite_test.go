package store_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"refbridge"
	"refbridge/store"
	"refbridge/store/storetest"
)

// openSQLite is the conformance suite's opener: a fresh file in a temp dir.
func openSQLite(t *testing.T, cfg store.Config) (*store.DB, error) {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "refbridge.db")
	}
	return store.Open(context.Background(), cfg)
}

func TestSQLite(t *testing.T) {
	t.Parallel()

	storetest.Run(t, openSQLite)
}

func newKeys(t testing.TB) *store.Keyring {
	t.Helper()
	k, _, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestOpenRefusesSecondOpen(t *testing.T) {
	t.Parallel()

	path := filepath.Join(t.TempDir(), "refbridge.db")
	db, err := store.Open(context.Background(), store.Config{Path: path, Keys: newKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(context.Background(), store.Config{Path: path, Keys: newKeys(t)})
	if err == nil || !strings.Contains(err.Error(), "in use by another refbridge process") {
		t.Fatalf("second Open: err = %v, want the store reported in use", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = store.Open(context.Background(), store.Config{Path: path, Keys: newKeys(t)})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	db.Close()
}

func TestOpenConfig(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  store.Config
		want string
	}{
		{"NoKeys", store.Config{Path: filepath.Join(dir, "a.db")}, "Keys is required"},
		{"NegativeRetention", store.Config{Path: filepath.Join(dir, "b.db"), Keys: newKeys(t), Retention: -time.Second}, "Retention"},
		{"NoPath", store.Config{Keys: newKeys(t)}, "Path"},
		{"Memory", store.Config{Path: ":memory:", Keys: newKeys(t)}, "Path"},
		{"QueryInPath", store.Config{Path: filepath.Join(dir, "c.db?mode=ro"), Keys: newKeys(t)}, "Path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, err := store.Open(context.Background(), tt.cfg)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestFilesAreOwnerOnlyAndPragmas(t *testing.T) {
	t.Parallel()

	path := filepath.Join(t.TempDir(), "refbridge.db")
	db, err := store.Open(context.Background(), store.Config{Path: path, Keys: newKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Receive(context.Background(), []refbridge.Inbound{{Flow: refbridge.FlowIntervention, Key: "IN-1", ContentHash: "h", Payload: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm", path + ".lock"} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %04o, want owner-only", filepath.Base(f), st.Mode().Perm())
		}
	}
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "secure_delete": "1"} {
		var got string
		if err := db.SQL().QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

// TestNoPersonalDataAtRestAfterCompletion scans the SQLite files' bytes once
// exchanges are done (Retention 0): neither the personal strings nor their
// ciphertexts may remain anywhere, free pages and WAL included.
func TestNoPersonalDataAtRestAfterCompletion(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "refbridge.db")
	db, err := store.Open(ctx, store.Config{Path: path, Keys: newKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	personal := []string{"Testchild", "Zenebech", "2014-03-15", "+251911000111", "Gambella Zone 3 block 7"}
	var items []refbridge.Inbound
	for i := range 60 {
		items = append(items, refbridge.Inbound{
			Flow: refbridge.FlowIntervention, Key: fmt.Sprintf("IN-%03d", i), ContentHash: "h1",
			Payload: fmt.Appendf(nil, `{"name_first":"Testchild","name_last":"Zenebech%d","date_of_birth":"2014-03-15","phone":"+251911000111","address":"Gambella Zone 3 block 7","notes":%q}`,
				i, strings.Repeat("x", 2500)),
		})
	}
	intakes, err := db.Receive(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	// The mapped form is personal too, and replaces the inbound one.
	for _, in := range intakes {
		if _, err := db.Transition(ctx, in.ExchangeID, store.Change{To: refbridge.StateMapped,
			Payload: []byte(`{"data":{"name_first":"Testchild","date_of_birth":"2014-03-15"}}`)}); err != nil {
			t.Fatal(err)
		}
	}
	ciphertexts := sealedPayloads(t, db.SQL())
	checkpoint(t, db.SQL())
	if all := fileBytes(t, path); !bytes.Contains(all, ciphertexts[0][:32]) {
		t.Fatal("sanity: a live ciphertext is not found in the files; the scan proves nothing")
	}
	for _, in := range intakes {
		if _, err := db.Transition(ctx, in.ExchangeID, store.Change{To: refbridge.StateDone}); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint(t, db.SQL())

	all := fileBytes(t, path)
	for _, s := range personal {
		if bytes.Contains(all, []byte(s)) {
			t.Errorf("%q found in the database files", s)
		}
	}
	for i, c := range ciphertexts {
		if bytes.Contains(all, c[:32]) {
			t.Errorf("ciphertext %d still in the database files after purge", i)
		}
	}
}

func sealedPayloads(t *testing.T, db *sql.DB) [][]byte {
	t.Helper()
	rows, err := db.Query(`SELECT payload FROM exchange WHERE payload IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		t.Fatal("no payloads stored")
	}
	return out
}

func checkpoint(t *testing.T, db *sql.DB) {
	t.Helper()
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// crashChildEnv names the directory of the store a child process works in.
const crashChildEnv = "REFBRIDGE_STORE_CRASH_DIR"

// TestCrashRecovery kills (SIGKILL) a process while its job is running and
// checks that the intake survived and that reopening the store runs the
// job again at once, without waiting for River's rescuer.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()

	if os.Getenv(crashChildEnv) != "" {
		t.Skip("parent only")
	}
	ctx := context.Background()
	dir := t.TempDir()
	_, keyText, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys"), []byte(keyText), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
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
			t.Fatalf("child exited before running a job; stderr:\n%s", stderr.String())
		}
		killedID = id
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("child did not start a job; stderr:\n%s", stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred cleanup runs
		t.Fatal(err)
	}
	cmd.Wait()

	keys, err := store.LoadKeyring(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, store.Config{Path: filepath.Join(dir, "refbridge.db"), Keys: keys})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer db.Close()

	exchanges, total, err := db.List(ctx, store.Filter{})
	if err != nil || total != 3 {
		t.Fatalf("after crash: %d exchanges, %v; want the 3 received", total, err)
	}
	// Before any worker starts, the killed job is already runnable again.
	inspect, err := db.NewQueue(store.QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := inspect.JobList(ctx, river.NewJobListParams().First(100))
	if err != nil {
		t.Fatal(err)
	}
	var killedJob *rivertype.JobRow
	for _, j := range res.Jobs {
		var args store.ProcessExchange
		json.Unmarshal(j.EncodedArgs, &args)
		if args.ExchangeID == killedID {
			killedJob = j
		}
		if j.State != rivertype.JobStateAvailable {
			t.Fatalf("job %d is %s after reopen, want available", j.ID, j.State)
		}
	}
	if killedJob == nil || killedJob.Attempt != 1 {
		t.Fatalf("killed job = %+v, want it available with attempt 1 recorded", killedJob)
	}

	worked := make(chan int, 8)
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[store.ProcessExchange]) error {
		if _, err := db.Transition(ctx, job.Args.ExchangeID, store.Change{From: []refbridge.ExchangeState{refbridge.StateReceived}, To: refbridge.StateDone}); err != nil {
			return err
		}
		if job.Args.ExchangeID == killedID {
			worked <- job.Attempt
		} else {
			worked <- 0
		}
		return nil
	}))
	q, err := db.NewQueue(store.QueueConfig{Workers: workers, JobTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q.Stop(stopCtx)
	}()
	var attempts []int
	for range 3 {
		select {
		case a := <-worked:
			attempts = append(attempts, a)
		case <-time.After(30 * time.Second):
			t.Fatalf("jobs not run after reopen; ran %v", attempts)
		}
	}
	slices.Sort(attempts)
	if !slices.Equal(attempts, []int{0, 0, 2}) {
		t.Fatalf("attempts = %v, want the killed job run again as attempt 2 and the others once", attempts)
	}
	for _, ex := range exchanges {
		if got, err := db.Get(ctx, ex.ID); err != nil || got.State != refbridge.StateDone {
			t.Fatalf("exchange %s: %v, %v; want done", ex.ID, got.State, err)
		}
	}
}

// TestCrashChild is the process TestCrashRecovery kills: it receives a
// batch, starts one worker and reports the job it is running, then hangs.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestCrashRecovery")
	}
	ctx := context.Background()
	keys, err := store.LoadKeyring(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, store.Config{Path: filepath.Join(dir, "refbridge.db"), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	var items []refbridge.Inbound
	for i := range 3 {
		items = append(items, refbridge.Inbound{Flow: refbridge.FlowIntervention, Key: fmt.Sprintf("IN-%d", i), ContentHash: "h1", Payload: []byte(`{"name":"Testchild"}`)})
	}
	if _, err := db.Receive(ctx, items); err != nil {
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
	select {} // wait for SIGKILL
}
