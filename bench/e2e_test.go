package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"refbridge"
	"refbridge/cmd/refbridge/refbridgetest"
	"refbridge/dtp/dtptest"
	"refbridge/primero/primerotest"
	"refbridge/profile"
	"refbridge/server"
	"refbridge/store"
)

// bin is the refbridge binary the benchmarks run.
var bin refbridgetest.Binary

func TestMain(m *testing.M) {
	code := m.Run()
	bin.Remove()
	os.Exit(code)
}

// bridge is `refbridge serve` as child processes (one or several replicas
// behind a load balancer) wired to both simulators.
type bridge struct {
	addr     string // what DTP and Primero's webhook call
	token    string
	profile  *profile.Profile
	primero  *primerotest.Sim
	dtp      *dtptest.Sim
	children []*child
	log      string
}

// child is one replica.
type child struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// bridgeSetup chooses the bridge a benchmark runs.
type bridgeSetup struct {
	workers  int
	replicas int    // default 1
	postgres string // store URL; "" for an SQLite file
	// wrapPrimero, if set, wraps the Primero simulator's handler (the
	// OpenFn comparison times every case created through it).
	wrapPrimero func(http.Handler) http.Handler
}

// startBridge starts both simulators and the bridge, Primero's webhook
// pointing at it, and waits until every replica answers.
func startBridge(b testing.TB, bs bridgeSetup) *bridge {
	b.Helper()
	bs.replicas = max(bs.replicas, 1)
	bin := bin.Path(b)
	dir := b.TempDir()
	p, err := profile.Load("gambella")
	if err != nil {
		b.Fatal(err)
	}
	br := &bridge{addr: refbridgetest.FreeAddr(b), token: "bench-token", profile: p, log: filepath.Join(dir, "refbridge.log")}
	primeroOpts := primerotest.Options{Seed: 1,
		Webhooks: []primerotest.Webhook{{URL: "http://" + br.addr + server.RoutePrimeroWebhook, APIKey: "bench-webhook-key"}}}
	if bs.wrapPrimero == nil {
		br.primero = primerotest.NewServer(b, primeroOpts)
	} else {
		br.primero = primerotest.New(primeroOpts)
		srv := httptest.NewServer(bs.wrapPrimero(br.primero.Handler()))
		br.primero.URL = srv.URL
		b.Cleanup(func() { srv.Close(); br.primero.Close() })
	}
	phone := "+000000000900"
	br.primero.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: "refbridge_api"}, Password: "pw", Scope: primerotest.ScopeAll,
		Permissions: []string{primerotest.PermSyncExternal}})
	for _, name := range []string{p.Intake().Owner, p.Referrals().FallbackUser} {
		br.primero.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: name, FullName: "Bench " + name, Email: name + "@example.org",
			Phone: &phone, Position: "Bench"}, Password: "pw", Scope: primerotest.ScopeAll, AgencyUniqueID: "UNICEF"})
	}
	br.dtp = dtptest.NewServer(b, dtptest.Options{Seed: 1, BridgeClient: &http.Client{Timeout: time.Minute}})
	pki := br.dtp.PKI()
	_, keyText, err := store.GenerateKeyring()
	if err != nil {
		b.Fatal(err)
	}
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			b.Fatal(err)
		}
		return path
	}
	storePath := filepath.Join(dir, "refbridge.db")
	if bs.postgres != "" {
		storePath = bs.postgres
	}
	keys, tokens, webhookKeys := file("keys", keyText), file("tokens", br.token), file("webhook-keys", "bench-webhook-key")
	password, subKey := file("primero-password", "pw"), file("subscription-key", dtptest.DefaultSubscriptionKey)
	logf, err := os.Create(br.log)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	for i := range bs.replicas {
		addr := br.addr
		if bs.replicas > 1 {
			addr = refbridgetest.FreeAddr(b)
		}
		config := file(fmt.Sprintf("refbridge-%d.yaml", i), fmt.Sprintf(`listen: %s
log: {level: warn, format: json}
store: {path: %s, keys_file: %s}
inbound: {tokens_file: %s, webhook_keys_file: %s}
primero: {base_url: %s, user: refbridge_api, password_file: %s}
dtp:
  referral_url: %s
  decision_url: %s
  subscription_key_file: %s
  cert_file: %s
  key_file: %s
  ca_file: %s
engine: {workers: %d}
`, addr, storePath, keys, tokens, webhookKeys, br.primero.URL, password, br.dtp.ReferralURL(), br.dtp.DecisionURL(),
			subKey, pki.ClientCertFile, pki.ClientKeyFile, pki.CAFile, bs.workers))
		c := &child{addr: addr, cmd: exec.Command(bin, "serve", "--config", config), done: make(chan struct{})}
		c.cmd.Stdout, c.cmd.Stderr = logf, logf
		if err := c.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		go func() { c.cmd.Wait(); close(c.done) }()
		b.Cleanup(func() { c.cmd.Process.Kill(); <-c.done })
		br.children = append(br.children, c)
		if i == 0 {
			br.waitHealthy(b, c) // the first replica migrates the store; the others find it current
		}
	}
	for _, c := range br.children[1:] {
		br.waitHealthy(b, c)
	}
	if bs.replicas > 1 {
		addrs := make([]string, len(br.children))
		for i, c := range br.children {
			addrs[i] = c.addr
		}
		refbridgetest.Balance(b, br.addr, func() []string { return addrs })
	}
	return br
}

// waitHealthy waits until the replica answers /healthz.
func (br *bridge) waitHealthy(b testing.TB, c *child) {
	b.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := http.Get("http://" + c.addr + server.RouteHealth)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-c.done:
			b.Fatalf("refbridge exited: %s", tail(br.log))
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("refbridge did not answer: %s", tail(br.log))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// peakRSS is the largest replica's VmHWM (peak resident set) in MiB.
func (br *bridge) peakRSS(b testing.TB) float64 {
	b.Helper()
	peak := 0.0
	for _, c := range br.children {
		peak = max(peak, c.peakRSS(b))
	}
	return peak
}

func (c *child) peakRSS(b testing.TB) float64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				b.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// cpuTime is the CPU time (user + system) the replicas have used so far.
func (br *bridge) cpuTime(b testing.TB) time.Duration {
	b.Helper()
	var sum time.Duration
	for _, c := range br.children {
		sum += c.cpuTime(b)
	}
	return sum
}

func (c *child) cpuTime(b testing.TB) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at ")".
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 13 {
		b.Fatalf("short /proc/PID/stat: %q", data)
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime, stime (fields 14 and 15 of stat)
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times; 100 on Linux.
const clockTicks = 100

// selfCPU is the CPU time this process (both simulators and the senders) has used.
func selfCPU(b testing.TB) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stop ends every replica gracefully and fails on an unclean exit.
func (br *bridge) stop(b testing.TB) {
	b.Helper()
	for _, c := range br.children {
		c.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range br.children {
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			b.Fatalf("refbridge did not stop: %s", tail(br.log))
		}
		if !c.cmd.ProcessState.Success() {
			b.Fatalf("refbridge exited with %v: %s", c.cmd.ProcessState, tail(br.log))
		}
	}
}

// BenchmarkEndToEndF1 runs flow F1 end to end against the simulators: DTP
// posts b.N new interventions (batches of 100, 4 senders) to `refbridge
// serve` (a child process: SQLite with fsync, River workers, Primero
// webhooks on), and the clock stops when every Pending Acknowledgement
// callback has reached DTP — each intervention upserted into its own new
// Primero case on the way. One op is one referral. Reports referrals/s and
// the child's peak RSS (VmHWM). The simulators share the machine's two
// cores with the bridge.
func BenchmarkEndToEndF1(b *testing.B) {
	for _, workers := range []int{8, 32, 128} {
		b.Run(fmt.Sprintf("sqlite/workers=%d", workers), func(b *testing.B) {
			runEndToEndF1(b, bridgeSetup{workers: workers})
		})
	}
	// Several replicas share one PostgreSQL (issue #7); skipped unless
	// REFBRIDGE_TEST_POSTGRES names a server.
	for _, replicas := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("postgres/replicas=%d/workers=32", replicas), func(b *testing.B) {
			runEndToEndF1(b, bridgeSetup{workers: 32, replicas: replicas, postgres: refbridgetest.PostgresDB(b)})
		})
	}
}

// runEndToEndF1 is one BenchmarkEndToEndF1 run against the bridge bs sets up.
func runEndToEndF1(b *testing.B, bs bridgeSetup) {
	br := startBridge(b, bs)
	tmpl := newBatchTemplate(b, br.profile, 100)
	batches := (b.N + tmpl.size - 1) / tmpl.size
	want := batches * tmpl.size
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		fail atomic.Value
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	b.ResetTimer()
	bridgeCPU, peersCPU := br.cpuTime(b), selfCPU(b)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(1))
				if n > batches {
					return
				}
				reply, err := br.dtp.PostJSON(ctx, "http://"+br.addr+server.RouteInterventions, br.token, tmpl.batch(n))
				if err != nil || reply.Status != http.StatusOK {
					fail.Store(fmt.Errorf("post batch %d: %v %v", n, err, reply))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := fail.Load().(error); ok {
		b.Fatal(err)
	}
	for {
		n := 0
		for k, c := range br.dtp.StatusCounts() {
			if k.Status == refbridge.StatusPendingAcknowledgement {
				n += c
			}
		}
		if n >= want {
			break
		}
		if ctx.Err() != nil {
			b.Fatalf("%d of %d callbacks reached DTP: %s", n, want, tail(br.log))
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "referrals/s")
	b.ReportMetric(br.peakRSS(b), "peak-RSS-MB")
	// CPU per referral on each side shows what the two cores allow:
	// the simulators and senders share them with the bridge.
	b.ReportMetric(float64((br.cpuTime(b)-bridgeCPU).Microseconds())/1000/float64(want), "bridge-CPU-ms/referral")
	b.ReportMetric(float64((selfCPU(b)-peersCPU).Microseconds())/1000/float64(want), "peers-CPU-ms/referral")
	if d := br.dtp.Doubles(); len(d) > 0 {
		b.Fatalf("doubles at DTP: %v", d[:min(len(d), 5)])
	}
	br.stop(b)
}
