package crashtest

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

var (
	fullSize  = flag.Bool("crash.full", false, "run the crash suite at full size: 5,000 referrals across the flows, ≥ 20 kills")
	seedFlag  = flag.Uint64("crash.seed", 0, "seed of kills, faults and traffic; 0 picks one from the clock (the run logs it)")
	raceChild = flag.Bool("crash.race", false, "build the refbridge child process with -race too")
)

// Users of the simulated Primero the flows meet.
const (
	apiUser    = "refbridge_api"
	caseWorker = "crash_caseworker"
	unhcrUser  = "unhcr_cw"
)

// bin is the refbridge binary the suite runs.
var bin refbridgetest.Binary

func TestMain(m *testing.M) {
	flag.Parse()
	bin.Race = *raceChild
	code := m.Run()
	bin.Remove()
	os.Exit(code)
}

// worldConfig is what a test chooses about the bridge it runs.
type worldConfig struct {
	Seed         uint64
	PollInterval time.Duration
	PollOverlap  time.Duration
	Workers      int
	MaxAttempts  int
	// PeerTimeout bounds one HTTP attempt to either peer.
	PeerTimeout time.Duration
	// Replicas is how many `refbridge serve` processes share the store
	// (default 1). Several need Postgres; they sit behind an in-process
	// round-robin load balancer at the world's address, as behind a real one.
	Replicas int
	// Postgres is the store's URL; empty keeps an SQLite file in the world's
	// temporary directory.
	Postgres string
	// JobTimeout bounds one exchange's work (default the bridge's 1m); a
	// job of a killed replica is taken over after twice this.
	JobTimeout time.Duration
	// Retention keeps finished payloads this long (default 0: purged as
	// the exchange ends).
	Retention time.Duration
}

// world is the two simulators in this process and `refbridge serve` as a
// child process on a fixed port, with its configuration, secrets and store
// in a temporary directory.
type world struct {
	t       *testing.T
	cfg     worldConfig
	bin     string
	dir     string
	profile *profile.Profile
	primero *primerotest.Sim
	dtp     *dtptest.Sim
	keys    *store.Keyring
	token   string
	addr    string // where DTP and Primero's webhooks reach the bridge
	dbPath  string // the SQLite file or the Postgres URL
	logPath string
	rng     *rand.Rand // picks which replica a kill hits

	mu       sync.Mutex
	replicas []*replica
	starts   int
	kills    int
	stops    int
	killed   []time.Time // when each SIGKILL was sent
}

// replica is one `refbridge serve` of the world, on its own port.
type replica struct {
	addr, config string
	proc         *process // nil while stopped
}

// process is one run of the child.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, valid once done is closed
	// signalled is set before the test signals it, so an exit without a
	// signal is recognised as the bridge dying by itself.
	signalled bool
}

func newWorld(t *testing.T, cfg worldConfig) *world {
	t.Helper()
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = time.Minute
	}
	if cfg.Replicas > 1 && cfg.Postgres == "" {
		t.Fatal("several replicas need a Postgres store")
	}
	w := &world{t: t, cfg: cfg, bin: bin.Path(t), dir: t.TempDir(), rng: rand.New(rand.NewPCG(cfg.Seed, 0x7265706c))}
	var err error
	if w.profile, err = profile.Load("gambella"); err != nil {
		t.Fatal(err)
	}
	w.addr = refbridgetest.FreeAddr(t)
	w.token = "crash-inbound-token-" + fmt.Sprint(cfg.Seed)
	webhookKey := "crash-webhook-key-" + fmt.Sprint(cfg.Seed)
	apiPassword := "crash-primero-password"
	subKey := "crash-subscription-key"

	w.primero = primerotest.NewServer(t, primerotest.Options{
		Seed:          int64(cfg.Seed),
		Webhooks:      []primerotest.Webhook{{URL: "http://" + w.addr + server.RoutePrimeroWebhook, APIKey: webhookKey}},
		WebhookClient: &http.Client{Timeout: 5 * time.Second},
	})
	phone := "+000000000900"
	contact := func(name, full string) refbridge.User {
		return refbridge.User{UserName: name, FullName: full, Email: name + "@example.org", Phone: &phone, Position: "Test position"}
	}
	w.primero.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: apiUser}, Password: apiPassword, Scope: primerotest.ScopeAll,
		Permissions: []string{primerotest.PermSyncExternal}})
	for _, u := range []struct{ name, full string }{
		{caseWorker, "Crash Caseworker"}, {unhcrUser, "UNHCR placeholder"},
		{w.profile.Intake().Owner, "Intake focal point"}, {w.profile.Referrals().FallbackUser, "Fallback contact"},
	} {
		w.primero.AddUser(primerotest.UserSpec{User: contact(u.name, u.full), Password: "pw", Scope: primerotest.ScopeAll, AgencyUniqueID: "UNICEF"})
	}

	w.dtp = dtptest.NewServer(t, dtptest.Options{
		Seed: int64(cfg.Seed) + 1, SubscriptionKeys: []string{subKey},
		// proGres's side: a real sender gives up on one attempt after a while
		// and tries again.
		BridgeClient: &http.Client{Timeout: 20 * time.Second},
	})
	pki := w.dtp.PKI()

	var keyText string
	if w.keys, keyText, err = store.GenerateKeyring(); err != nil {
		t.Fatal(err)
	}
	secret := func(name, content string) string {
		t.Helper()
		p := filepath.Join(w.dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	w.dbPath = filepath.Join(w.dir, "store", "refbridge.db")
	if cfg.Postgres != "" {
		w.dbPath = cfg.Postgres
	}
	w.logPath = filepath.Join(w.dir, "refbridge.log")
	keysFile, tokensFile := secret("keys", keyText), secret("inbound-tokens", "# DTP's tokens\n"+w.token+"\n")
	webhookFile, passwordFile := secret("webhook-keys", webhookKey+"\n"), secret("primero-password", apiPassword+"\n")
	subKeyFile := secret("dtp-subscription-key", subKey+"\n")
	for i := range cfg.Replicas {
		addr := w.addr
		if cfg.Replicas > 1 {
			addr = refbridgetest.FreeAddr(t)
		}
		yaml := fmt.Sprintf(`profile: gambella
listen: %s
log:
  level: info
  format: json
store:
  path: %s
  keys_file: %s
  retention: %s
inbound:
  tokens_file: %s
  webhook_keys_file: %s
primero:
  base_url: %s
  user: %s
  password_file: %s
  auth: basic
  timeout: %s
dtp:
  referral_url: %s
  decision_url: %s
  subscription_key_file: %s
  cert_file: %s
  key_file: %s
  ca_file: %s
  timeout: %s
engine:
  poll_interval: %s
  poll_overlap: %s
  max_attempts: %d
  workers: %d
  job_timeout: %s
`, addr, w.dbPath, keysFile, cfg.Retention, tokensFile, webhookFile,
			w.primero.URL, apiUser, passwordFile, cfg.PeerTimeout,
			w.dtp.ReferralURL(), w.dtp.DecisionURL(), subKeyFile,
			pki.ClientCertFile, pki.ClientKeyFile, pki.CAFile, cfg.PeerTimeout,
			cfg.PollInterval, cfg.PollOverlap, cfg.MaxAttempts, cfg.Workers, cfg.JobTimeout)
		w.replicas = append(w.replicas, &replica{addr: addr, config: secret(fmt.Sprintf("refbridge-%d.yaml", i), yaml)})
	}
	if cfg.Replicas > 1 {
		refbridgetest.Balance(t, w.addr, w.upAddrs)
	}
	// Registered after the simulators' cleanups, so it runs before them.
	t.Cleanup(w.cleanup)
	return w
}

func (w *world) url(route string) string { return "http://" + w.addr + route }

// start runs every stopped replica (`refbridge serve --config …`); their
// output is appended to logPath.
func (w *world) start() {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for i, rep := range w.replicas {
		if rep.proc == nil {
			w.startLocked(i)
			n++
		}
	}
	if n == 0 {
		w.t.Fatal("start: every replica is already running")
	}
}

// startLocked starts replica i; callers hold w.mu.
func (w *world) startLocked(i int) {
	w.t.Helper()
	rep := w.replicas[i]
	f, err := os.OpenFile(w.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(w.bin, "serve", "--config", rep.config)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		w.t.Fatalf("start refbridge: %v", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	rep.proc = p
	w.starts++
}

// upAddrs lists the addresses of the replicas running now.
func (w *world) upAddrs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var up []string
	for _, rep := range w.replicas {
		if rep.proc != nil {
			up = append(up, rep.addr)
		}
	}
	return up
}

// running reports whether some replica runs, failing the test if one died
// without being signalled.
func (w *world) running() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	up := false
	for _, rep := range w.replicas {
		if rep.proc != nil && !w.exitedBySelf(rep) {
			up = true
		}
	}
	return up
}

// exitedBySelf reports an exit the test did not cause. Callers hold w.mu.
func (w *world) exitedBySelf(rep *replica) bool {
	select {
	case <-rep.proc.done:
		if !rep.proc.signalled {
			w.t.Errorf("refbridge exited by itself (%v); log tail:\n%s", rep.proc.err, w.logTail(40))
			rep.proc = nil
			return true
		}
	default:
	}
	return false
}

// kill sends SIGKILL to one running replica, chosen at random: no deferred
// cleanup, no graceful shutdown. It returns which one.
func (w *world) kill() int {
	w.t.Helper()
	w.mu.Lock()
	var up []int
	for i, rep := range w.replicas {
		if rep.proc != nil {
			up = append(up, i)
		}
	}
	w.mu.Unlock()
	if len(up) == 0 {
		w.t.Fatal("kill: no replica is running")
	}
	i := up[w.rng.IntN(len(up))]
	at := time.Now()
	w.signal(i, syscall.SIGKILL, 0)
	w.mu.Lock()
	w.kills++
	w.killed = append(w.killed, at)
	w.mu.Unlock()
	return i
}

func (w *world) killTimes() []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.killed)
}

// stop sends SIGTERM to every running replica and waits for each graceful
// shutdown to finish.
func (w *world) stop() {
	w.t.Helper()
	for i := range w.replicas {
		w.mu.Lock()
		up := w.replicas[i].proc != nil
		w.mu.Unlock()
		if up {
			w.signal(i, syscall.SIGTERM, 30*time.Second)
		}
	}
	w.mu.Lock()
	w.stops++
	w.mu.Unlock()
}

func (w *world) signal(i int, sig syscall.Signal, grace time.Duration) {
	w.t.Helper()
	w.mu.Lock()
	rep := w.replicas[i]
	p := rep.proc
	if p == nil || w.exitedBySelf(rep) {
		w.mu.Unlock()
		w.t.Fatalf("signal %v: replica %d is not running", sig, i)
	}
	p.signalled = true
	w.mu.Unlock()
	if err := p.cmd.Process.Signal(sig); err != nil {
		w.t.Fatalf("signal %v: %v", sig, err)
	}
	if grace > 0 {
		select {
		case <-p.done:
		case <-time.After(grace):
			p.cmd.Process.Kill()
			<-p.done
			w.t.Errorf("refbridge did not stop within %s of %v; log tail:\n%s", grace, sig, w.logTail(40))
		}
		if sig == syscall.SIGTERM && p.err != nil {
			w.t.Errorf("refbridge exited with %v after SIGTERM; log tail:\n%s", p.err, w.logTail(40))
		}
	}
	<-p.done
	w.mu.Lock()
	rep.proc = nil
	w.mu.Unlock()
}

func (w *world) cleanup() {
	w.mu.Lock()
	var procs []*process
	for _, rep := range w.replicas {
		if rep.proc != nil {
			rep.proc.signalled = true
			procs = append(procs, rep.proc)
		}
	}
	w.mu.Unlock()
	for _, p := range procs {
		p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHealthy waits until every running replica answers /healthz.
func (w *world) waitHealthy(timeout time.Duration) {
	w.t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	w.mu.Lock()
	var addrs []string
	for _, rep := range w.replicas {
		if rep.proc != nil {
			addrs = append(addrs, rep.addr)
		}
	}
	w.mu.Unlock()
	for _, addr := range addrs {
		for {
			if !w.running() {
				w.t.Fatal("the bridge is not running")
			}
			resp, err := c.Get("http://" + addr + server.RouteHealth)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				w.t.Fatalf("the bridge at %s did not become healthy in %s; log tail:\n%s", addr, timeout, w.logTail(40))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// logTail returns the last n lines the children wrote.
func (w *world) logTail(n int) string {
	b, _ := os.ReadFile(w.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// openStore opens the bridge's store with its keyring; on SQLite the
// bridge must be stopped (the store refuses a second process).
func (w *world) openStore(ctx context.Context) *store.DB {
	w.t.Helper()
	db, err := store.Open(ctx, store.Config{Path: w.dbPath, Keys: w.keys})
	if err != nil {
		w.t.Fatalf("open the bridge's store: %v", err)
	}
	return db
}

// exchanges lists every exchange of the store, by flow and key.
func (w *world) exchanges(ctx context.Context) map[refbridge.Flow]map[string]refbridge.Exchange {
	w.t.Helper()
	db := w.openStore(ctx)
	defer db.Close()
	all, total, err := db.List(ctx, store.Filter{})
	if err != nil {
		w.t.Fatal(err)
	}
	if total != len(all) {
		w.t.Fatalf("List returned %d of %d exchanges", len(all), total)
	}
	out := map[refbridge.Flow]map[string]refbridge.Exchange{}
	for _, ex := range all {
		if out[ex.Flow] == nil {
			out[ex.Flow] = map[string]refbridge.Exchange{}
		}
		if _, dup := out[ex.Flow][ex.Key]; dup {
			w.t.Errorf("two exchanges for %s %s", ex.Flow, ex.Key)
		}
		out[ex.Flow][ex.Key] = ex
	}
	return out
}

// sender is proGres's side of the inbound API: it posts until the bridge
// answers 200, as a real sender retries a post that got no answer. A retry
// is a re-delivery of the same messages, never a new referral.
type sender struct {
	w *world
	// posts counts successful posts; redeliveries the posts sent again
	// because an earlier attempt got no 200 (the bridge was down).
	mu                  sync.Mutex
	posts, redeliveries int
	outcomes            map[refbridge.IntakeOutcome]int
	// onReply, if set, sees every answer the bridge gave, before deliver
	// acts on it (a test of how the bridge refuses posts reads them).
	onReply func(*dtptest.Reply)
}

// batchAnswer is the part of the bridge's batch answer the suite reads.
type batchAnswer struct {
	Results []struct {
		Key     string                  `json:"key"`
		Outcome refbridge.IntakeOutcome `json:"outcome"`
	} `json:"results"`
}

// deliver posts with send until the bridge answers 200 and returns the
// answer. A 4xx is the bridge refusing the whole batch: a bug here.
func (s *sender) deliver(ctx context.Context, send func(ctx context.Context) (*dtptest.Reply, error)) (batchAnswer, error) {
	var ans batchAnswer
	for attempt := 0; ; attempt++ {
		reply, err := send(ctx)
		if err == nil && s.onReply != nil {
			s.onReply(reply)
		}
		switch {
		case err == nil && reply.Status == http.StatusOK:
			if err := json.Unmarshal(reply.Body, &ans); err != nil {
				return ans, fmt.Errorf("bridge answer: %w", err)
			}
			s.mu.Lock()
			s.posts++
			s.redeliveries += attempt
			if s.outcomes == nil {
				s.outcomes = map[refbridge.IntakeOutcome]int{}
			}
			for _, r := range ans.Results {
				s.outcomes[r.Outcome]++
			}
			s.mu.Unlock()
			return ans, nil
		case err == nil && reply.Status >= 400 && reply.Status < 500:
			return ans, fmt.Errorf("bridge refused a batch with %d: %s", reply.Status, bytes.TrimSpace(reply.Body))
		case ctx.Err() != nil:
			return ans, fmt.Errorf("batch not delivered: %w", ctx.Err())
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *sender) interventions(ctx context.Context, batch []refbridge.Intervention) (batchAnswer, error) {
	return s.deliver(ctx, func(ctx context.Context) (*dtptest.Reply, error) {
		return s.w.dtp.PostInterventions(ctx, s.w.url(server.RouteInterventions), s.w.token,
			refbridge.InterventionBatch{Interventions: batch, RequestType: refbridge.RequestTypeOutgoingReferral})
	})
}

func (s *sender) decisions(ctx context.Context, batch []refbridge.ReferralDecision) (batchAnswer, error) {
	return s.deliver(ctx, func(ctx context.Context) (*dtptest.Reply, error) {
		return s.w.dtp.PostDecisions(ctx, s.w.url(server.RouteDecisions), s.w.token,
			refbridge.DecisionBatch{Interventions: batch, RequestType: refbridge.RequestTypeIncomingReferralDecision})
	})
}

func (s *sender) stats() (posts, redeliveries int, outcomes map[refbridge.IntakeOutcome]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[refbridge.IntakeOutcome]int{}
	for k, v := range s.outcomes {
		out[k] = v
	}
	return s.posts, s.redeliveries, out
}

// waitUntil polls cond every interval until it holds or ctx ends; it
// returns cond's last explanation of what is missing.
func waitUntil(ctx context.Context, interval time.Duration, cond func() (bool, string)) (bool, string) {
	for {
		ok, why := cond()
		if ok {
			return true, ""
		}
		select {
		case <-ctx.Done():
			return false, why
		case <-time.After(interval):
		}
	}
}

// logSummary counts the bridge's log lines by message and code (its logs
// carry only ids and codes), e.g. how many polls ended and how.
func (w *world) logSummary() map[string]int {
	w.t.Helper()
	data, err := os.ReadFile(w.logPath)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		var rec struct {
			Msg  string `json:"msg"`
			Code string `json:"code"`
		}
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		switch rec.Msg {
		case "poll done", "exchange attempt failed", "refbridge serving", "circuit changed", "secrets reloaded":
			k := rec.Msg
			if rec.Code != "" {
				k += " " + rec.Code
			}
			out[k]++
		}
	}
	return out
}
