package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"refbridge"
	"refbridge/console"
	"refbridge/dtp"
	"refbridge/dtp/dtptest"
	"refbridge/engine"
	"refbridge/fault"
	"refbridge/primero"
	"refbridge/primero/primerotest"
	"refbridge/profile"
	"refbridge/server"
	"refbridge/store"
)

// chromiumPath is Debian's chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// needBrowser returns chromium's path, skipping the test when it is missing
// unless REFBRIDGE_TEST_BROWSER is set (CI), where a missing browser fails.
func needBrowser(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath(chromiumPath)
	if err == nil {
		return path
	}
	if os.Getenv("REFBRIDGE_TEST_BROWSER") != "" {
		t.Fatalf("REFBRIDGE_TEST_BROWSER is set but %s is missing (apt-get install chromium): %v", chromiumPath, err)
	}
	t.Skipf("no %s; set REFBRIDGE_TEST_BROWSER=1 to require it", chromiumPath)
	return ""
}

// world is the bridge as serve runs it — store, engine, queue, inbound API
// and console on one listener — against both simulators.
type world struct {
	t       *testing.T
	db      *store.DB
	primero *primerotest.Sim
	dtp     *dtptest.Sim
	url     string
}

const inboundToken = "browser-test-token"

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	p, err := profile.Load("gambella")
	if err != nil {
		t.Fatal(err)
	}
	psim := primerotest.NewServer(t, primerotest.Options{Seed: 1})
	psim.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: "refbridge_api"}, Password: "pw", Scope: primerotest.ScopeAll, Permissions: []string{primerotest.PermSyncExternal}})
	phone := "+000000000900"
	psim.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: p.Intake().Owner, FullName: "Intake focal point", Email: "fp@example.org", Phone: &phone, Position: "Test"},
		Password: "pw", Scope: primerotest.ScopeAll, AgencyUniqueID: "UNICEF"})
	fast := refbridge.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, MaxRetryAfter: time.Second}
	pc, err := primero.New(primero.Config{BaseURL: psim.URL, UserName: "refbridge_api", Password: "pw", Timeout: 2 * time.Second, Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	dsim := dtptest.NewServer(t, dtptest.Options{Seed: 1})
	pki := dsim.PKI()
	dc, err := dtp.New(dtp.Config{ReferralURL: dsim.ReferralURL(), DecisionURL: dsim.DecisionURL(), SubscriptionKey: dtptest.DefaultSubscriptionKey,
		CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile, CAFile: pki.CAFile, Timeout: 2 * time.Second, Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, store.Config{Path: filepath.Join(t.TempDir(), "refbridge.db"), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	eng, err := engine.New(engine.Config{Profile: p, Store: db, Primero: pc, DTP: dc,
		Retry: refbridge.RetryPolicy{MaxAttempts: 3, BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond}, PollInterval: time.Hour,
		BreakerTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	api, err := server.New(server.Config{Tokens: []string{inboundToken}, Inbox: db, Validator: engine.Validator{Profile: p}})
	if err != nil {
		t.Fatal(err)
	}
	con, err := console.New(console.Config{Store: db, Profile: p, Circuits: eng.CircuitStates, LastPoll: eng.LastPoll, QueueDepth: db.QueueDepth})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, con.Handler())
	mux.Handle("/", api.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	q, err := db.NewQueue(store.QueueConfig{Workers: eng.Workers(), MaxWorkers: 4, JobTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q.Stop(stop)
	})
	for _, u := range []struct {
		name string
		role refbridge.Role
	}{{"fp.gambella", refbridge.RoleFocalPoint}, {"auditor", refbridge.RoleAuditor}, {"admin", refbridge.RoleAdmin}} {
		if err := db.AddUser(ctx, u.name, u.role, "en", "browser test password"); err != nil {
			t.Fatal(err)
		}
	}
	return &world{t: t, db: db, primero: psim, dtp: dsim, url: srv.URL}
}

func (w *world) interventions() []refbridge.Intervention {
	w.t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "fixtures", "dtp-interventions-inbound.json"))
	if err != nil {
		w.t.Fatal(err)
	}
	var batch refbridge.InterventionBatch
	if err := json.Unmarshal(b, &batch); err != nil {
		w.t.Fatal(err)
	}
	return batch.Interventions
}

func (w *world) post(rows ...refbridge.Intervention) {
	w.t.Helper()
	reply, err := w.dtp.PostInterventions(context.Background(), w.url+server.RouteInterventions, inboundToken,
		refbridge.InterventionBatch{Interventions: rows, RequestType: refbridge.RequestTypeOutgoingReferral})
	if err != nil || reply.Status != http.StatusOK {
		w.t.Fatalf("post interventions: %v %+v", err, reply)
	}
}

func (w *world) waitState(flow refbridge.Flow, key string, state refbridge.ExchangeState) refbridge.Exchange {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ex, err := w.db.GetByKey(context.Background(), flow, key); err == nil && ex.State == state {
			return ex
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.t.Fatalf("%s %s never reached %s", flow, key, state)
	return refbridge.Exchange{}
}

// browser starts a headless chromium with a small-laptop window; each call
// is a fresh browser (no shared cookies).
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 800))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// The first run starts the browser, under no timeout (it would stop it).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	ctx, cancel3 := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel3)
	return ctx
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// do runs steps or fails the test naming what.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// text returns the visible text of the first element sel matches.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func eval(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return s
}

// shots saves screenshots to $REFBRIDGE_SCREENSHOTS (docs/screenshots when
// refreshing them), else nowhere.
type shots struct {
	t   *testing.T
	dir string
}

func (s shots) take(ctx context.Context, name string) {
	s.t.Helper()
	if s.dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, name+".png"), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func login(t *testing.T, ctx context.Context, base, name string) {
	t.Helper()
	do(t, ctx, "log in as "+name,
		chromedp.Navigate(base+"/console/login"),
		chromedp.WaitVisible(css(`input[name=name]`)),
		chromedp.SendKeys(css(`input[name=name]`), name),
		chromedp.SendKeys(css(`input[name=password]`), "browser test password"),
		chromedp.Submit(css(`input[name=password]`)),
		chromedp.WaitVisible(css(`img.chart`)),
	)
}

// TestBrowserRetryFailedReferral is the console's acceptance path in a real
// browser: a focal point logs in, finds a dead-lettered referral by its
// intervention number, retries it, and sees it delivered; an auditor cannot
// open personal details; a cross-site form post is refused; Arabic renders
// right to left. With REFBRIDGE_SCREENSHOTS=DIR it saves each page there.
func TestBrowserRetryFailedReferral(t *testing.T) {
	path := needBrowser(t)
	t.Parallel()
	w := newWorld(t)
	sh := shots{t: t, dir: os.Getenv("REFBRIDGE_SCREENSHOTS")}
	rows := w.interventions()
	iv := rows[0]

	// DTP refuses every callback past the budget: the referrals are dead.
	w.dtp.Faults().Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{502}})
	w.post(rows...)
	dead := w.waitState(refbridge.FlowIntervention, iv.InterventionNumber, refbridge.StateDead)
	other := w.waitState(refbridge.FlowIntervention, rows[2].InterventionNumber, refbridge.StateDead)
	w.dtp.Faults().Clear()

	ctx := browser(t, path)
	do(t, ctx, "login page", chromedp.Navigate(w.url+"/console/login"), chromedp.WaitVisible(css(`input[name=name]`)))
	sh.take(ctx, "01-login")
	login(t, ctx, w.url, "fp.gambella")
	sh.take(ctx, "02-overview")

	// Find it by intervention number.
	do(t, ctx, "find by intervention number",
		chromedp.Navigate(w.url+"/console/exchanges"),
		chromedp.WaitVisible(css(`input[name=key]`)),
		chromedp.SendKeys(css(`input[name=key]`), iv.InterventionNumber),
		chromedp.Submit(css(`input[name=key]`)),
		// The value attribute is only on the page the server filtered (typing
		// sets the property): wait for that page, not the one it replaces.
		chromedp.WaitVisible(css(`input[name=key][value="`+iv.InterventionNumber+`"]`)),
		chromedp.WaitVisible(css(`a[href="/console/exchanges/`+dead.ID+`"]`)),
	)
	if list := text(t, ctx, `table.list tbody`); !strings.Contains(list, iv.InterventionNumber) || strings.Contains(list, other.Key) {
		t.Fatalf("filtered list: %q", list)
	}
	sh.take(ctx, "03-exchanges")
	do(t, ctx, "dead list", chromedp.Navigate(w.url+"/console/dead"), chromedp.WaitVisible(css(`form.act`)))
	sh.take(ctx, "04-dead")

	// Open it, choose a reason, retry.
	do(t, ctx, "open exchange", chromedp.Click(css(`a[href="/console/exchanges/`+dead.ID+`"]`)),
		chromedp.WaitVisible(css(`form[action$="/retry"] select`)))
	sh.take(ctx, "05-exchange-dead")
	do(t, ctx, "retry",
		chromedp.SetValue(css(`form[action$="/retry"] select`), "peer_fixed"),
		chromedp.Click(css(`form[action$="/retry"] button`)),
		chromedp.WaitVisible(css(`p.flash`)),
	)
	if flash := text(t, ctx, `p.flash`); !strings.Contains(flash, "Retried") {
		t.Fatalf("flash after retry: %q", flash)
	}
	// See it delivered: reload until the page says so.
	var state, timeline string
	for range 150 {
		do(t, ctx, "reload", chromedp.Navigate(w.url+"/console/exchanges/"+dead.ID), chromedp.WaitVisible(css(`ol.timeline`)))
		if state = text(t, ctx, `dd[class^=state-]`); strings.Contains(state, "done") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	timeline = text(t, ctx, `ol.timeline`)
	if !strings.Contains(state, "done") || !strings.Contains(timeline, "retried") || !strings.Contains(timeline, "fp.gambella") ||
		!strings.Contains(timeline, "delivered") {
		t.Fatalf("after retry: state %q, timeline %q", state, timeline)
	}
	sh.take(ctx, "06-exchange-delivered")

	// Personal details of another (still dead, so it has its payload).
	do(t, ctx, "personal details",
		chromedp.Navigate(w.url+"/console/exchanges/"+other.ID),
		chromedp.WaitVisible(css(`form[action$="/personal"] button`)),
		chromedp.Click(css(`form[action$="/personal"] button`)),
		chromedp.WaitVisible(css(`p.flash.warn`)),
	)
	sh.take(ctx, "07-personal")
	for _, page := range []struct{ path, name, sel string }{
		{"/console/held", "08-held", "table.list"},
		{"/console/audit", "09-audit", "table.list"},
		{"/console/profile", "10-profile", "details"},
	} {
		do(t, ctx, page.path, chromedp.Navigate(w.url+page.path), chromedp.WaitVisible(css(page.sel)))
		sh.take(ctx, page.name)
	}

	// Arabic, chosen in the header: the page turns right to left.
	do(t, ctx, "choose Arabic",
		chromedp.SetValue(css(`form[action="/console/language"] select`), "ar"),
		chromedp.Click(css(`form[action="/console/language"] button`)),
		chromedp.WaitVisible(css(`img.chart`)),
	)
	if dir, cssDir := eval(t, ctx, `document.documentElement.dir`), eval(t, ctx, `getComputedStyle(document.body).direction`); dir != "rtl" || cssDir != "rtl" {
		t.Fatalf("Arabic page dir %q, computed direction %q; want rtl", dir, cssDir)
	}
	sh.take(ctx, "11-overview-arabic")

	// A cross-site form (another site: localhost, not 127.0.0.1) posting a
	// discard to the console is refused, and nothing changes.
	evil := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, `<!doctype html><form method="post" action="%s/console/exchanges/%s/discard"><input name="reason" value="duplicate"><button id="go">go</button></form>`, w.url, other.ID)
	}))
	t.Cleanup(evil.Close)
	do(t, ctx, "cross-site post",
		chromedp.Navigate(strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)),
		chromedp.WaitVisible(css(`#go`)),
		chromedp.Click(css(`#go`)),
		chromedp.WaitVisible(css(`main`)),
	)
	if body := text(t, ctx, `main`); !strings.Contains(body, "403") {
		t.Fatalf("cross-site discard answered %q, want the 403 page", body)
	}
	if ex, err := w.db.Get(context.Background(), other.ID); err != nil || ex.State != refbridge.StateDead {
		t.Fatalf("the cross-site post changed the exchange: %s %v", ex.State, err)
	}

	// An auditor is refused the exchange and its personal details.
	actx := browser(t, path)
	login(t, actx, w.url, "auditor")
	do(t, actx, "auditor opens an exchange", chromedp.Navigate(w.url+"/console/exchanges/"+other.ID), chromedp.WaitVisible(css(`main`)))
	if body := text(t, actx, `main`); !strings.Contains(body, "Not allowed") || strings.Contains(body, other.Key) {
		t.Fatalf("auditor on an exchange page: %q", body)
	}
	sh.take(actx, "12-auditor-refused")

	// An admin's Accounts page.
	adm := browser(t, path)
	login(t, adm, w.url, "admin")
	do(t, adm, "accounts page", chromedp.Navigate(w.url+"/console/users"), chromedp.WaitVisible(css(`form[action="/console/users"]`)))
	if users := text(t, adm, `table.list`); !strings.Contains(users, "fp.gambella") || !strings.Contains(users, "auditor") {
		t.Fatalf("accounts page: %q", users)
	}
	sh.take(adm, "13-accounts")
	if n, _, err := w.db.AuditEvents(context.Background(), store.AuditFilter{ExchangeID: other.ID}); err != nil || countKind(n, refbridge.AuditViewed) != 1 {
		t.Fatalf("views of the other exchange's personal details recorded: %d (%v), want the focal point's 1", countKind(n, refbridge.AuditViewed), err)
	}
}

func countKind(evs []refbridge.AuditEvent, k refbridge.AuditKind) int {
	n := 0
	for _, e := range evs {
		if e.Kind == k {
			n++
		}
	}
	return n
}
