package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
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

// bridge is `refbridge serve` as a child process wired to both simulators.
type bridge struct {
	addr    string
	token   string
	profile *profile.Profile
	primero *primerotest.Sim
	dtp     *dtptest.Sim
	cmd     *exec.Cmd
	done    chan struct{}
	log     string
}

// startBridge starts both simulators and the bridge with workers workers,
// Primero's webhook pointing at it, and waits until it answers.
func startBridge(b *testing.B, workers int) *bridge {
	b.Helper()
	bin := bin.Path(b)
	dir := b.TempDir()
	p, err := profile.Load("gambella")
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	br := &bridge{addr: ln.Addr().String(), token: "bench-token", profile: p, done: make(chan struct{}), log: filepath.Join(dir, "refbridge.log")}
	ln.Close()
	br.primero = primerotest.NewServer(b, primerotest.Options{Seed: 1,
		Webhooks: []primerotest.Webhook{{URL: "http://" + br.addr + server.RoutePrimeroWebhook, APIKey: "bench-webhook-key"}}})
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
	config := file("refbridge.yaml", fmt.Sprintf(`listen: %s
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
`, br.addr, filepath.Join(dir, "refbridge.db"), file("keys", keyText), file("tokens", br.token), file("webhook-keys", "bench-webhook-key"),
		br.primero.URL, file("primero-password", "pw"), br.dtp.ReferralURL(), br.dtp.DecisionURL(),
		file("subscription-key", dtptest.DefaultSubscriptionKey), pki.ClientCertFile, pki.ClientKeyFile, pki.CAFile, workers))
	logf, err := os.Create(br.log)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	br.cmd = exec.Command(bin, "serve", "--config", config)
	br.cmd.Stdout, br.cmd.Stderr = logf, logf
	if err := br.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { br.cmd.Wait(); close(br.done) }()
	b.Cleanup(func() { br.cmd.Process.Kill(); <-br.done })
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get("http://" + br.addr + server.RouteHealth)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-br.done:
			b.Fatalf("refbridge exited: %s", tail(br.log))
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("refbridge did not answer: %s", tail(br.log))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return br
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// peakRSS reads the child's VmHWM (peak resident set) in MiB.
func (br *bridge) peakRSS(b *testing.B) float64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", br.cmd.Process.Pid))
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

// cpuTime is the CPU time (user + system) the child has used so far.
func (br *bridge) cpuTime(b *testing.B) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", br.cmd.Process.Pid))
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
func selfCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stop ends the child gracefully and fails on an unclean exit.
func (br *bridge) stop(b *testing.B) {
	b.Helper()
	br.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-br.done:
	case <-time.After(30 * time.Second):
		b.Fatalf("refbridge did not stop: %s", tail(br.log))
	}
	if !br.cmd.ProcessState.Success() {
		b.Fatalf("refbridge exited with %v: %s", br.cmd.ProcessState, tail(br.log))
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
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			br := startBridge(b, workers)
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
		})
	}
}
