package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"refbridge"
	"refbridge/dtp/dtptest"
	"refbridge/primero/primerotest"
	"refbridge/profile"
	"refbridge/server"
)

// The OpenFn comparison (issue #10) needs node and bench/openfn/node_modules
// (`npm ci` there), so it runs only when asked:
//
//	REFBRIDGE_BENCH_OPENFN=1 go test -count=1 -run TestCompareOpenFn -v -timeout 30m ./bench/
//
// Optional: REFBRIDGE_BENCH_OPENFN_N (interventions per size, default 1000),
// REFBRIDGE_BENCH_OPENFN_BATCHES (default 1,10,100,1000),
// REFBRIDGE_BENCH_OPENFN_WORKERS (refbridge's engine workers, default 32),
// REFBRIDGE_BENCH_OPENFN_PLOT (write the PNG chart there, e.g.
// ../docs/performance-compare.png), REFBRIDGE_BENCH_OPENFN_CACHE_KEY=1 (a
// fresh linker cacheKey per OpenFn run, as OpenFn's ws-worker isolates runs),
// REFBRIDGE_BENCH_OPENFN_REPS (repetitions, default 1: the table shows
// medians and the range of referrals/s), REFBRIDGE_BENCH_OPENFN_JOB=full (OpenFn runs job-full.js: search, create,
// read back and the DTP callback, like refbridge, instead of job.js's POST).
const (
	envCompare        = "REFBRIDGE_BENCH_OPENFN"
	envCompareN       = "REFBRIDGE_BENCH_OPENFN_N"
	envCompareBatches = "REFBRIDGE_BENCH_OPENFN_BATCHES"
	envCompareWorkers = "REFBRIDGE_BENCH_OPENFN_WORKERS"
	envComparePlot    = "REFBRIDGE_BENCH_OPENFN_PLOT"
	envCompareCache   = "REFBRIDGE_BENCH_OPENFN_CACHE_KEY"
	envCompareJob     = "REFBRIDGE_BENCH_OPENFN_JOB"
	envCompareReps    = "REFBRIDGE_BENCH_OPENFN_REPS"
)

// compareResult is one side's run over N interventions in batches of size.
type compareResult struct {
	side      string
	batch     int
	n         int
	perSecond float64 // first submission to last referral done
	wallRate  float64 // OpenFn: N / the node process's whole life (start, imports, runs); 0 for refbridge
	low, high float64 // the range of perSecond over repetitions
	p50, p99  time.Duration
	peakRSS   float64 // MiB
	cpuMS     float64 // the side's own CPU per referral
}

// TestCompareOpenFn runs flow F1 through refbridge and through the
// reference's OpenFn runtime on the same interventions, against the same
// Primero simulator code, for several batch sizes, and prints a table:
// referrals/s, the p50/p99 latency from submission to the case created in
// Primero, peak RSS, CPU per referral, and refbridge's ratios to OpenFn.
//
// refbridge: a fresh `refbridge serve` (startBridge: SQLite with fsync,
// Primero webhook on) receives the interventions from the DTP simulator in
// POSTs of `batch` each, one after the other; it is done when every Pending
// Acknowledgement callback has reached DTP. OpenFn: one node process runs
// bench/openfn/job.js with @openfn/runtime, one runtime run per `batch`
// interventions (batch 1 is run.js's per-item mode, one run per referral
// as a webhook-triggered workflow; batch N is one run over the batch).
// Both sides are checked to have created every case exactly once.
func TestCompareOpenFn(t *testing.T) {
	if os.Getenv(envCompare) == "" {
		t.Skipf("set %s=1 to compare with the OpenFn baseline (needs node and `npm ci` in bench/openfn)", envCompare)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	if _, err := os.Stat("openfn/node_modules/@openfn/runtime"); err != nil {
		t.Fatalf("bench/openfn has no node_modules: run `npm ci` there (%v)", err)
	}
	n := envInt(t, envCompareN, 1000)
	workers := envInt(t, envCompareWorkers, 32)
	var batches []int
	for _, f := range strings.Split(orDefault(os.Getenv(envCompareBatches), "1,10,100,1000"), ",") {
		b, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || b < 1 || n%b != 0 {
			t.Fatalf("%s: %q is not a positive divisor of %d", envCompareBatches, f, n)
		}
		batches = append(batches, b)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("load before: %s", strings.TrimSpace(string(load)))

	reps := envInt(t, envCompareReps, 1)
	var all [][]compareResult
	for rep := range reps {
		var results []compareResult
		for _, b := range batches {
			rb := compareRefbridge(t, n, b, workers)
			of := compareOpenFn(t, node, n, b)
			t.Logf("rep %d, batch %d: refbridge %.0f/s, OpenFn %.0f/s", rep+1, b, rb.perSecond, of.perSecond)
			results = append(results, rb, of)
		}
		all = append(all, results)
	}
	results := medians(all)
	load, _ = os.ReadFile("/proc/loadavg")
	t.Logf("load after: %s", strings.TrimSpace(string(load)))

	var out strings.Builder
	job := "job.js (POST only)"
	if os.Getenv(envCompareJob) == "full" {
		job = "job-full.js (search, create, read back, DTP callback)"
	}
	fmt.Fprintf(&out, "\nF1, %d interventions per row; refbridge with %d workers; OpenFn %s, cacheKey per run: %v; median of %d\n\n",
		n, workers, job, os.Getenv(envCompareCache) != "", reps)
	fmt.Fprintln(&out, "| side | batch | referrals/s | referrals/s incl. node start | p50 ms | p99 ms | peak RSS MB | CPU ms/referral |")
	fmt.Fprintln(&out, "|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		wall := "-"
		if r.wallRate > 0 {
			wall = fmt.Sprintf("%.0f", r.wallRate)
		}
		rate := fmt.Sprintf("%.0f", r.perSecond)
		if reps > 1 {
			rate += fmt.Sprintf(" (%.0f–%.0f)", r.low, r.high)
		}
		fmt.Fprintf(&out, "| %s | %d | %s | %s | %.1f | %.1f | %.0f | %.2f |\n", r.side, r.batch, rate, wall,
			ms(r.p50), ms(r.p99), r.peakRSS, r.cpuMS)
	}
	fmt.Fprintln(&out, "\n| batch | throughput refbridge/OpenFn | (incl. node start) | p99 latency refbridge/OpenFn | peak RSS refbridge/OpenFn | target ≥ 20× at ≤ 1/3 RSS |")
	fmt.Fprintln(&out, "|---|---|---|---|---|---|")
	for i := 0; i < len(results); i += 2 {
		rb, of := results[i], results[i+1]
		x, rss := rb.perSecond/of.perSecond, rb.peakRSS/of.peakRSS
		met := "not met"
		if x >= 20 && rss <= 1.0/3 {
			met = "met"
		}
		fmt.Fprintf(&out, "| %d | %.2f× | %.2f× | %.2f× | %.2f | %s |\n", rb.batch, x, rb.perSecond/of.wallRate, ms(rb.p99)/ms(of.p99), rss, met)
	}
	fmt.Print(out.String())

	if path := os.Getenv(envComparePlot); path != "" {
		line := func(name string, c color.RGBA, side string, y func(compareResult) float64) series {
			s := series{name: name, color: c}
			for _, r := range results {
				if r.side == side {
					s.x, s.y = append(s.x, float64(r.batch)), append(s.y, y(r))
				}
			}
			return s
		}
		title := fmt.Sprintf("F1 THROUGHPUT, %d INTERVENTIONS PER POINT, 2 VCPU", n)
		if reps > 1 {
			title = fmt.Sprintf("F1 THROUGHPUT, %d INTERVENTIONS PER POINT, MEDIAN OF %d, 2 VCPU", n, reps)
		}
		err := plotThroughput(path, title, []series{
			line(fmt.Sprintf("REFBRIDGE SERVE (%d WORKERS, SQLITE, FSYNC)", workers), color.RGBA{31, 119, 180, 255}, "refbridge",
				func(r compareResult) float64 { return r.perSecond }),
			line("OPENFN RUNTIME, RUNS ONLY", color.RGBA{255, 127, 14, 255}, "openfn", func(r compareResult) float64 { return r.perSecond }),
			line("OPENFN RUNTIME, INCL. NODE START", color.RGBA{214, 39, 40, 255}, "openfn", func(r compareResult) float64 { return r.wallRate }),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("plot written to %s", path)
	}
}

// medians is the median of every field over repetitions, and the range of
// referrals/s; ratios are then taken between medians.
func medians(all [][]compareResult) []compareResult {
	out := slices.Clone(all[0])
	for i := range out {
		pick := func(f func(compareResult) float64) float64 {
			v := make([]float64, len(all))
			for k := range all {
				v[k] = f(all[k][i])
			}
			slices.Sort(v)
			if len(v)%2 == 1 {
				return v[len(v)/2]
			}
			return (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		r := &out[i]
		r.perSecond = pick(func(r compareResult) float64 { return r.perSecond })
		r.wallRate = pick(func(r compareResult) float64 { return r.wallRate })
		r.peakRSS = pick(func(r compareResult) float64 { return r.peakRSS })
		r.cpuMS = pick(func(r compareResult) float64 { return r.cpuMS })
		r.p50 = time.Duration(pick(func(r compareResult) float64 { return float64(r.p50) }))
		r.p99 = time.Duration(pick(func(r compareResult) float64 { return float64(r.p99) }))
		r.low, r.high = r.perSecond, r.perSecond
		for k := range all {
			r.low, r.high = min(r.low, all[k][i].perSecond), max(r.high, all[k][i].perSecond)
		}
	}
	return out
}

// compareRefbridge posts n interventions to a fresh refbridge in POSTs of
// batch each, one after the other, and waits until every callback reached DTP.
func compareRefbridge(t *testing.T, n, batch, workers int) compareResult {
	obs := newCaseObserver()
	br := startBridge(t, bridgeSetup{workers: workers, wrapPrimero: obs.wrap})
	tmpl := newBatchTemplate(t, br.profile, batch)
	bodies, ids := make([][]byte, n/batch), make([][]string, n/batch)
	for k := range bodies {
		bodies[k] = tmpl.batch(k + 1)
		ids[k] = individualIDs(t, bodies[k])
	}
	submitted := make(map[string]time.Time, n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cpu0 := br.cpuTime(t)
	start := time.Now()
	for k, body := range bodies {
		at := time.Now()
		for _, id := range ids[k] {
			submitted[id] = at
		}
		reply, err := br.dtp.PostJSON(ctx, "http://"+br.addr+server.RouteInterventions, br.token, body)
		if err != nil || reply.Status != http.StatusOK {
			t.Fatalf("post batch %d: %v %v", k, err, reply)
		}
	}
	for pending(br) < n {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d callbacks reached DTP: %s", pending(br), n, tail(br.log))
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	r := compareResult{side: "refbridge", batch: batch, n: n, perSecond: float64(n) / elapsed.Seconds(),
		peakRSS: br.peakRSS(t), cpuMS: float64((br.cpuTime(t) - cpu0).Microseconds()) / 1000 / float64(n)}
	r.p50, r.p99 = obs.latencies(t, submitted)
	if got := pending(br); got != n {
		t.Fatalf("refbridge: %d Pending Acknowledgement callbacks for %d interventions", got, n)
	}
	if d := br.dtp.Doubles(); len(d) > 0 {
		t.Fatalf("refbridge: doubles at DTP: %v", d[:min(len(d), 5)])
	}
	br.stop(t)
	return r
}

// pending counts the Pending Acknowledgement callbacks DTP has received.
func pending(br *bridge) int {
	n := 0
	for k, c := range br.dtp.StatusCounts() {
		if k.Status == refbridge.StatusPendingAcknowledgement {
			n += c
		}
	}
	return n
}

// individualIDs lists the UNHCR individual numbers of a DTP batch, the key
// both sides' cases are found by.
func individualIDs(t *testing.T, body []byte) []string {
	var b refbridge.InterventionBatch
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(b.Interventions))
	for i, iv := range b.Interventions {
		ids[i] = iv.IndividualID
	}
	return ids
}

// compareOpenFn runs bench/openfn/run.js over the same interventions
// refbridge gets (the same template), against a fresh Primero simulator.
func compareOpenFn(t *testing.T, node string, n, batch int) compareResult {
	full := os.Getenv(envCompareJob) == "full"
	obs := newCaseObserver()
	sim := primerotest.New(primerotest.Options{Seed: 1})
	sim.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: "refbridge_api", FullName: "refbridge API user"},
		Password: "pw", Scope: primerotest.ScopeAll, Permissions: []string{primerotest.PermSyncExternal}})
	srv := httptest.NewServer(obs.wrap(sim.Handler()))
	defer func() { srv.Close(); sim.Close() }()

	// The same rows refbridge gets, as one array in DTP's JSON form.
	p, err := profile.Load("gambella")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := newBatchTemplate(t, p, batch)
	var rows []json.RawMessage
	var ids []string
	for k := range n / batch {
		body := tmpl.batch(k + 1)
		var b struct {
			Interventions []json.RawMessage `json:"interventions"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, b.Interventions...)
		ids = append(ids, individualIDs(t, body)...)
	}
	dir := t.TempDir()
	input, out, logPath := filepath.Join(dir, "interventions.json"), filepath.Join(dir, "result.json"), filepath.Join(dir, "openfn.log")
	data, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(input, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mode := "batch"
	if batch == 1 {
		mode = "per-item"
	}
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(node, "--experimental-vm-modules", "--no-warnings", "run.js", mode, strconv.Itoa(n), srv.URL,
		"refbridge_api", "pw", "--input", input, "--batch", strconv.Itoa(batch), "--out", out)
	if os.Getenv(envCompareCache) != "" {
		cmd.Args = append(cmd.Args, "--cache-key")
	}
	var dtp *dtptest.Sim
	if full {
		dtp = dtptest.NewServer(t, dtptest.Options{Seed: 1})
		pki := dtp.PKI()
		cmd.Args = append(cmd.Args, "--job", "full", "--dtp-url", dtp.DecisionURL(), "--dtp-key", dtptest.DefaultSubscriptionKey,
			"--dtp-ca", pki.CAFile, "--dtp-cert", pki.ClientCertFile, "--dtp-client-key", pki.ClientKeyFile)
	}
	cmd.Dir = "openfn"
	cmd.Stdout, cmd.Stderr = logf, logf // the adaptor logs a line per request
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("openfn %s batch %d: %v: %s", mode, batch, err, tail(logPath))
	}
	wall := time.Since(start)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)

	var res struct {
		Posted int `json:"posted"`
		Runs   []struct {
			Start, End float64 // epoch ms
			Items      int
		} `json:"runs"`
	}
	data, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if res.Posted != n || len(res.Runs) != n/batch {
		t.Fatalf("openfn: posted %d in %d runs, want %d in %d", res.Posted, len(res.Runs), n, n/batch)
	}
	epoch := func(ms float64) time.Time { return time.UnixMicro(int64(ms * 1000)) }
	submitted := make(map[string]time.Time, n)
	for i, id := range ids {
		submitted[id] = epoch(res.Runs[i/batch].Start)
	}
	runs := epoch(res.Runs[len(res.Runs)-1].End).Sub(epoch(res.Runs[0].Start))
	r := compareResult{side: "openfn", batch: batch, n: n, perSecond: float64(n) / runs.Seconds(),
		wallRate: float64(n) / wall.Seconds(), peakRSS: float64(ru.Maxrss) / 1024,
		cpuMS: float64((time.Duration(ru.Utime.Nano() + ru.Stime.Nano())).Microseconds()) / 1000 / float64(n)}
	r.p50, r.p99 = obs.latencies(t, submitted)
	if full {
		got := 0
		for k, c := range dtp.StatusCounts() {
			if k.Status == refbridge.StatusPendingAcknowledgement {
				got += c
			}
		}
		if got != n || len(dtp.Doubles()) > 0 {
			t.Fatalf("openfn: %d Pending Acknowledgement callbacks for %d interventions, doubles %v", got, n, dtp.Doubles())
		}
	}
	return r
}

// caseObserver wraps the Primero simulator and notes when each case was
// created (a 2xx answer to POST /api/v2/cases), by UNHCR individual number.
type caseObserver struct {
	mu      sync.Mutex
	created map[string][]time.Time
}

func newCaseObserver() *caseObserver { return &caseObserver{created: map[string][]time.Time{}} }

func (o *caseObserver) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/cases" {
			h.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		if sw.status/100 != 2 {
			return
		}
		at := time.Now()
		var c struct {
			Data struct {
				ID string `json:"unhcr_individual_no"`
			} `json:"data"`
		}
		json.Unmarshal(body, &c)
		o.mu.Lock()
		o.created[c.Data.ID] = append(o.created[c.Data.ID], at)
		o.mu.Unlock()
	})
}

// latencies checks that every submitted intervention became exactly one
// case, and nothing else was created, and returns the p50 and p99 of the
// time from submission to creation.
func (o *caseObserver) latencies(t *testing.T, submitted map[string]time.Time) (p50, p99 time.Duration) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.created) != len(submitted) {
		t.Fatalf("%d distinct cases created for %d interventions", len(o.created), len(submitted))
	}
	d := make([]time.Duration, 0, len(submitted))
	for id, at := range submitted {
		c := o.created[id]
		if len(c) != 1 {
			t.Fatalf("intervention for %s created %d cases", id, len(c))
		}
		d = append(d, c[0].Sub(at))
	}
	slices.Sort(d)
	q := func(p int) time.Duration { return d[min(len(d)-1, len(d)*p/100)] }
	return q(50), q(99)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
