//go:build linux

package crashtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
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
	"refbridge/fault"
	"refbridge/server"
)

// diskFullSize is one size of TestDiskFull.
type diskFullSize struct {
	referrals int           // across the four flows
	tmpfs     int64         // the store's file system, bytes
	pace      time.Duration // how long the traffic takes to send
	before    time.Duration // traffic with room, before the disk fills
	full      time.Duration // how long it stays full once the bridge refuses
	budget    time.Duration // the whole run, settling included
}

var (
	diskFullReduced = diskFullSize{referrals: 120, tmpfs: 16 << 20, pace: 10 * time.Second,
		before: 2 * time.Second, full: 4 * time.Second, budget: 100 * time.Second}
	diskFullBig = diskFullSize{referrals: 1500, tmpfs: 64 << 20, pace: 60 * time.Second,
		before: 15 * time.Second, full: 20 * time.Second, budget: 15 * time.Minute}
)

// TestDiskFull runs traffic across the four flows while the file system
// holding the store (a small tmpfs: the SQLite file, its WAL and
// shared-memory files) fills up with a ballast file until ENOSPC, keeps it
// full while DTP and the case workers go on sending, then frees the space.
//
// While full, the bridge must stay up (a full disk is an operator's
// problem to fix, not a reason to crash-loop) and say so: each post it
// cannot store is refused with 503, a Retry-After and an error body whose
// code is store_full, echoing nothing back, and /readyz answers 503
// not_ready with store "full" and reason store_full. Its log says "disk
// full", with no personal data. Once space returns, the senders' retries
// go through and the bridge recovers by itself: every effect at Primero
// and DTP exactly once (the crash test's checks), no exchange left moving,
// the audit chain verifies, and no personal data is left in the store's
// files or the log.
//
// Needs root and tmpfs: skipped without them, unless REFBRIDGE_TEST_TMPFS=1
// (CI), which makes their absence a failure.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	size := diskFullReduced
	if *fullSize {
		size = diskFullBig
	}
	s := seed(t)
	ctx, cancel := context.WithTimeout(context.Background(), size.budget)
	defer cancel()

	w := newWorld(t, worldConfig{Seed: s, PollInterval: time.Second, PollOverlap: time.Minute, Workers: 8, MaxAttempts: 100,
		PeerTimeout: 2 * time.Second})
	storeDir := mountStoreTmpfs(t, w, size.tmpfs)
	tr := newTraffic(w, size.referrals, s, size.pace)
	var replies replyLog
	tr.send.onReply = replies.add
	w.start()
	w.waitHealthy(30 * time.Second)
	start := time.Now()

	trafficDone := make(chan struct{})
	go func() { defer close(trafficDone); tr.run(ctx) }()

	// Traffic with room, DTP down meanwhile so that exchanges wait with
	// their payloads at rest; then, while the bridge is stopped, note those
	// ciphertexts: the exchanges end after the disk was full, and not one
	// may remain.
	w.dtp.Faults().Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{503}})
	sleep(ctx, size.before)
	w.stop()
	ciphertexts := captureCiphertexts(t, w)
	w.dtp.Faults().Clear()
	w.start()
	w.waitHealthy(30 * time.Second)
	// /readyz is watched from now on (not across the restart: a client
	// connecting while nothing listens can take the port by connecting to
	// itself). It answers ready before the disk fills.
	ready := watchReadiness(ctx, w)
	if ok, _ := waitUntil(ctx, 20*time.Millisecond, func() (bool, string) { return !ready.firstReadyAfter(start).IsZero(), "" }); !ok {
		t.Fatalf("/readyz never ready before the disk filled; last sample %s", ready.last())
	}

	// Fill the file system and keep it full while traffic goes on.
	fullAt := time.Now()
	b := fillFileSystem(t, storeDir)
	waitCtx, waitCancel := context.WithTimeout(ctx, 20*time.Second)
	refused, _ := waitUntil(waitCtx, 20*time.Millisecond, func() (bool, string) {
		return replies.refusedSince(fullAt) > 0, ""
	})
	waitCancel()
	if !refused {
		b.free()
		t.Fatalf("sanity: the file system has been full for %s (ballast %d bytes) and the bridge has not refused a post; "+
			"the test proved nothing; log tail:\n%s", time.Since(fullAt).Round(time.Millisecond), b.size(), w.logTail(20))
	}
	firstRefusal := time.Now()
	for end := time.Now().Add(size.full); time.Now().Before(end) && ctx.Err() == nil; {
		if !w.running() {
			t.Fatalf("the bridge died while the disk was full; log tail:\n%s", w.logTail(40))
		}
		sleep(ctx, 100*time.Millisecond)
	}
	refusedWhileFull := replies.refusedSince(fullAt)
	spaceBack := b.free()
	t.Logf("disk full from +%s (ballast %d bytes of a %d-byte tmpfs), first refusal after %s, space back after %s: "+
		"%d posts refused, %d /readyz samples not ready",
		fullAt.Sub(start).Round(time.Millisecond), b.size(), size.tmpfs, firstRefusal.Sub(fullAt).Round(time.Millisecond),
		spaceBack.Sub(fullAt).Round(time.Millisecond), refusedWhileFull, ready.notReadySince(fullAt))

	awaitTraffic(ctx, t, tr, trafficDone)
	// The bridge recovers by itself: ready again, every effect shows,
	// while it runs (settle then looks in the store).
	ok, why := waitUntil(ctx, 250*time.Millisecond, func() (bool, string) { return tr.complete(tr.observe()) })
	if !ok {
		t.Fatalf("effects still missing after space came back: %s; log tail:\n%s", why, w.logTail(30))
	}
	if ok, _ := waitUntil(ctx, 50*time.Millisecond, func() (bool, string) { return ready.readySince(spaceBack), "" }); !ok {
		t.Errorf("/readyz not ready again after space came back; last sample %s", ready.last())
	}
	t.Logf("ready again %s and every effect shown %s after space came back",
		ready.firstReadyAfter(spaceBack).Sub(spaceBack).Round(time.Millisecond), time.Since(spaceBack).Round(time.Millisecond))
	ready.stop()
	settle(ctx, t, w, tr)
	exchanges := w.exchanges(ctx)
	o := tr.observe()

	posts, redeliveries, outcomes := tr.send.stats()
	t.Logf("%d referrals (F1 %d, F2 %d, F1d %d, F2d %d) in %s; DTP posts %d, re-delivered %d (outcomes %v); re-sends at DTP %v",
		len(tr.ivs)+len(tr.refs)+tr.f1d+tr.f2d, len(tr.ivs), len(tr.refs), tr.f1d, tr.f2d, time.Since(start).Round(time.Millisecond),
		posts, redeliveries, outcomes, resendsAtDTP(o))
	t.Logf("bridge log: %v", w.logSummary())

	t.Run("refused posts are retryable and say why", func(t *testing.T) {
		checkRefusals(t, tr, replies.all())
	})
	t.Run("not ready while full", func(t *testing.T) { ready.check(t, fullAt, spaceBack) })
	t.Run("the log says disk full", func(t *testing.T) {
		if n := w.logCount(func(msg string) bool { return strings.Contains(msg, "disk full") }); n == 0 {
			t.Errorf("no log line says \"disk full\"; log tail:\n%s", w.logTail(20))
		}
	})
	t.Run("effects exactly once", func(t *testing.T) { checkEffects(t, tr, o) })
	t.Run("no exchange left moving", func(t *testing.T) { checkStore(t, tr, exchanges) })
	t.Run("audit chain verifies", func(t *testing.T) {
		db := w.openStore(ctx)
		defer db.Close()
		if _, err := db.VerifyAudit(ctx); err != nil {
			t.Errorf("audit chain after the disk was full: %v", err)
		}
	})
	t.Run("no personal data at rest", func(t *testing.T) { checkNoPersonalData(ctx, t, w, tr, exchanges, ciphertexts) })
}

// mountStoreTmpfs mounts a tmpfs of size bytes where the bridge keeps its
// SQLite store, before it first starts. The unmount (lazy if something
// still holds it) runs after the bridge is killed.
func mountStoreTmpfs(t *testing.T, w *world, size int64) string {
	t.Helper()
	if w.cfg.Postgres != "" {
		t.Fatal("the disk-full test runs on the SQLite store")
	}
	dir := filepath.Dir(w.dbPath)
	why := ""
	if os.Geteuid() != 0 {
		why = "mounting a tmpfs needs root"
	} else {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		err := syscall.Mount("refbridge-diskfull", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC,
			fmt.Sprintf("size=%d,mode=0700", size))
		if err != nil {
			why = "mount -t tmpfs: " + err.Error()
		}
	}
	if why != "" {
		if os.Getenv("REFBRIDGE_TEST_TMPFS") == "1" {
			t.Fatalf("REFBRIDGE_TEST_TMPFS=1 but %s", why)
		}
		t.Skipf("%s (REFBRIDGE_TEST_TMPFS=1 makes this a failure)", why)
	}
	t.Cleanup(func() {
		w.cleanup() // the bridge holds the store's files open
		if err := syscall.Unmount(dir, 0); err != nil {
			if lerr := syscall.Unmount(dir, syscall.MNT_DETACH); lerr != nil {
				t.Errorf("unmount %s: %v; lazily: %v", dir, err, lerr)
			}
		}
	})
	return dir
}

// ballast is a file that fills its file system and keeps it full: space
// the bridge frees is taken again at once.
type ballast struct {
	t     *testing.T
	path  string
	f     *os.File
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	bytes int64
}

func fillFileSystem(t *testing.T, dir string) *ballast {
	t.Helper()
	b := &ballast{t: t, path: filepath.Join(dir, "ballast"), done: make(chan struct{})}
	var err error
	if b.f, err = os.OpenFile(b.path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.top(); err != nil {
		t.Fatalf("fill the store's file system: %v", err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Bavail != 0 {
		t.Fatalf("sanity: %d blocks still free after filling", st.Bavail)
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			select {
			case <-b.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if err := b.top(); err != nil {
				t.Errorf("keep the file system full: %v", err)
				return
			}
		}
	}()
	return b
}

// top writes until ENOSPC, in smaller and smaller pieces.
func (b *ballast) top() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, chunk := range []int{1 << 20, 64 << 10, 4 << 10, 512, 1} {
		buf := bytes.Repeat([]byte{0xa5}, chunk)
		for {
			n, err := b.f.Write(buf)
			b.bytes += int64(n)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *ballast) size() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes
}

// free deletes the ballast (once) and returns when the space was back.
func (b *ballast) free() time.Time {
	select {
	case <-b.done:
	default:
		close(b.done)
		b.wg.Wait()
		b.f.Close()
		if err := os.Remove(b.path); err != nil {
			b.t.Fatal(err)
		}
	}
	return time.Now()
}

// reply is one answer the bridge gave DTP.
type reply struct {
	at         time.Time
	status     int
	retryAfter string
	body       []byte
}

// replyLog keeps every answer to DTP's posts.
type replyLog struct {
	mu      sync.Mutex
	replies []reply
}

func (l *replyLog) add(r *dtptest.Reply) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.replies = append(l.replies, reply{at: time.Now(), status: r.Status, retryAfter: r.Header.Get("Retry-After"), body: bytes.Clone(r.Body)})
}

func (l *replyLog) all() []reply {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.replies)
}

// refusedSince counts the answers other than 200 given after t.
func (l *replyLog) refusedSince(t time.Time) int {
	n := 0
	for _, r := range l.all() {
		if r.status != http.StatusOK && !r.at.Before(t) {
			n++
		}
	}
	return n
}

// checkRefusals: every post the bridge did not take is a 503 with a
// Retry-After in seconds and the error body with code store_full; no 500,
// no other status, no internals (driver, file names) and nothing of the
// request echoed back.
func checkRefusals(t *testing.T, tr *traffic, replies []reply) {
	t.Helper()
	forbidden := append(tr.personalStrings(), "CRS-", "sqlite", "SQLITE", "disk is full", "no space", ".db", "/tmp", "refbridge.db")
	refused := 0
	for _, r := range replies {
		if r.status == http.StatusOK {
			continue
		}
		refused++
		if r.status != http.StatusServiceUnavailable {
			t.Errorf("a post was answered %d, want 503 (retryable) while the store is full: %s", r.status, bytes.TrimSpace(r.body))
			return // one bad answer says it; they are all alike
		}
		if s, err := strconv.Atoi(r.retryAfter); err != nil || s <= 0 {
			t.Errorf("503 with Retry-After %q, want a positive number of seconds", r.retryAfter)
		}
		var body struct {
			Error struct {
				Code     refbridge.ErrorCode `json:"code"`
				Message  string              `json:"message"`
				Problems []refbridge.Problem `json:"problems"`
			} `json:"error"`
		}
		dec := json.NewDecoder(bytes.NewReader(r.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			t.Errorf("503 body is not the error body (%v): %s", err, bytes.TrimSpace(r.body))
			continue
		}
		if body.Error.Code != refbridge.EStoreFull || body.Error.Message == "" || len(body.Error.Problems) != 0 {
			t.Errorf("503 body %s, want code %q, a message and no problems", bytes.TrimSpace(r.body), refbridge.EStoreFull)
		}
		for _, f := range forbidden {
			if bytes.Contains(r.body, []byte(f)) {
				t.Errorf("503 body holds %q: %s", f, bytes.TrimSpace(r.body))
			}
		}
		if t.Failed() {
			return // one bad answer says it; they are all alike
		}
	}
	if refused == 0 {
		t.Error("sanity: no post was refused")
		return
	}
	t.Logf("%d of %d posts refused, each 503 store_full with a Retry-After", refused, len(replies))
}

// readySample is one answer of /readyz.
type readySample struct {
	at         time.Time
	status     int
	retryAfter string
	body       map[string]any
	raw        []byte
	err        error
}

func (s readySample) String() string {
	if s.err != nil {
		return s.at.Format("15:04:05.000") + " " + s.err.Error()
	}
	return fmt.Sprintf("%s %d %s", s.at.Format("15:04:05.000"), s.status, bytes.TrimSpace(s.raw))
}

// readinessWatch asks /readyz every 50 ms until stopped.
type readinessWatch struct {
	mu      sync.Mutex
	samples []readySample
	cancel  context.CancelFunc
	done    chan struct{}
}

func watchReadiness(ctx context.Context, w *world) *readinessWatch {
	ctx, cancel := context.WithCancel(ctx)
	rw := &readinessWatch{cancel: cancel, done: make(chan struct{})}
	c := &http.Client{Timeout: 3 * time.Second}
	go func() {
		defer close(rw.done)
		for ctx.Err() == nil {
			s := readySample{at: time.Now()}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.url(server.RouteReady), nil)
			resp, err := c.Do(req)
			if err != nil {
				s.err = err
			} else {
				s.status, s.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
				s.raw, s.err = readAll(resp)
				if s.err == nil {
					s.err = json.Unmarshal(s.raw, &s.body)
				}
			}
			if ctx.Err() != nil {
				return
			}
			rw.mu.Lock()
			rw.samples = append(rw.samples, s)
			rw.mu.Unlock()
			sleep(ctx, 50*time.Millisecond)
		}
	}()
	return rw
}

func readAll(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err := buf.ReadFrom(resp.Body)
	return buf.Bytes(), err
}

func (rw *readinessWatch) stop() { rw.cancel(); <-rw.done }

func (rw *readinessWatch) all() []readySample {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return slices.Clone(rw.samples)
}

func (rw *readinessWatch) last() string {
	all := rw.all()
	if len(all) == 0 {
		return "none"
	}
	return all[len(all)-1].String()
}

// notReadySince counts the answers, taken after t, that were not ready.
func (rw *readinessWatch) notReadySince(t time.Time) int {
	n := 0
	for _, s := range rw.all() {
		if !s.at.Before(t) && s.err == nil && s.status != http.StatusOK {
			n++
		}
	}
	return n
}

// readySince reports whether the last answer, taken after t, is ready.
func (rw *readinessWatch) readySince(t time.Time) bool {
	all := rw.all()
	if len(all) == 0 {
		return false
	}
	s := all[len(all)-1]
	return !s.at.Before(t) && s.err == nil && s.status == http.StatusOK
}

// firstReadyAfter is when /readyz first answered ready after t.
func (rw *readinessWatch) firstReadyAfter(t time.Time) time.Time {
	for _, s := range rw.all() {
		if !s.at.Before(t) && s.err == nil && s.status == http.StatusOK {
			return s.at
		}
	}
	return time.Time{}
}

// check: ready before the disk filled; while full, not_ready answers are
// 503 with a Retry-After, store "full" and reason store_full; the bridge
// never stopped answering; only the disk made it not ready.
func (rw *readinessWatch) check(t *testing.T, fullAt, spaceBack time.Time) {
	t.Helper()
	notReady := 0
	for _, s := range rw.all() {
		if s.err != nil {
			t.Errorf("/readyz did not answer at %s", s)
			continue
		}
		if s.status == http.StatusOK {
			continue
		}
		if s.at.Before(fullAt) || s.at.After(spaceBack.Add(10*time.Second)) {
			t.Errorf("/readyz not ready while the disk had room: %s", s)
			continue
		}
		notReady++
		ra, err := strconv.Atoi(s.retryAfter)
		if s.status != http.StatusServiceUnavailable || err != nil || ra <= 0 || s.body["status"] != server.ReadyNot ||
			s.body["store"] != "full" || s.body["reason"] != string(refbridge.EStoreFull) {
			t.Errorf("/readyz while full: %s (Retry-After %q), want 503, a Retry-After, status %q, store \"full\", reason %q",
				s, s.retryAfter, server.ReadyNot, refbridge.EStoreFull)
			return
		}
	}
	if notReady == 0 {
		t.Error("/readyz never reported not ready while the disk was full")
	}
	t.Logf("%d /readyz answers not ready (store full) while the disk was full", notReady)
}

// logCount counts the bridge's log lines whose message satisfies match.
func (w *world) logCount(match func(msg string) bool) int {
	w.t.Helper()
	data, err := os.ReadFile(w.logPath)
	if err != nil {
		w.t.Fatal(err)
	}
	n := 0
	for _, line := range bytes.Split(data, []byte("\n")) {
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(line, &rec) == nil && match(rec.Msg) {
			n++
		}
	}
	return n
}
