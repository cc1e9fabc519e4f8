package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"refbridge"
	"refbridge/dtp"
	"refbridge/dtp/dtptest"
	"refbridge/primero"
	"refbridge/primero/primerotest"
	"refbridge/profile"
	"refbridge/server"
	"refbridge/store"
)

// Demo identities: the bridge's API user in Primero, the case workers
// referrals pass through, and the inbound credentials DTP and Primero use.
const (
	demoAPIUser    = "refbridge_api"
	demoCaseWorker = "demo_caseworker"
	demoUNHCRUser  = "unhcr_cw"
)

// cmdDemo runs the whole bridge against both simulators on a temporary
// store, sends synthetic referrals through all four flows (some invalid,
// some duplicated, some without consent) and reports, from the simulators'
// own state, whether anything was lost or doubled.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address of the bridge's inbound API")
	once := fs.Bool("once", false, "run the traffic once, print the summary as JSON and exit (0 only if nothing was lost or doubled)")
	n := fs.Int("referrals", 60, "interventions from proGres to send (half as many referrals go the other way)")
	verbose := fs.Bool("verbose", false, "log every exchange step (IDs and codes only)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *n < 1 || *n > 100000 {
		return usageError{"--referrals must be between 1 and 100000"}
	}
	level := "warn"
	if *verbose {
		level = "info"
	}
	logger := newLogger(stderr, "text", level)

	d, err := startDemo(ctx, *addr, logger)
	if err != nil {
		return err
	}
	defer d.close()
	progress := stdout
	if *once {
		progress = io.Discard
	}
	fmt.Fprintf(progress, "refbridge demo: bridge on %s (inbound API %s), Primero simulator on %s, DTP simulator on %s\n",
		d.bridgeURL, server.RouteInterventions, d.primeroURL, d.dtpURL)

	t := &traffic{d: d, n: *n, out: progress}
	if err := t.run(ctx); err != nil {
		return err
	}
	sum := t.summary(ctx)
	if *once {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
		if sum.Lost != 0 || sum.Duplicated != 0 {
			return fmt.Errorf("demo: %d lost, %d duplicated", sum.Lost, sum.Duplicated)
		}
		return nil
	}
	sum.print(stdout)
	link, err := d.consoleLogin(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "The bridge keeps running on %s. Operator console (one-time login link, valid 10 minutes):\n  %s%s\nCtrl-C stops.\n", d.bridgeURL, d.bridgeURL, link)
	<-ctx.Done()
	return nil
}

// demo is the running bridge and its two simulated peers.
type demo struct {
	dir                           string
	profile                       *profile.Profile
	primero                       *primerotest.Sim
	dtp                           *dtptest.Sim
	app                           *app
	token                         string
	bridgeURL, primeroURL, dtpURL string
	stop                          func()
	done                          chan error
	servers                       []*http.Server
}

func startDemo(ctx context.Context, addr string, logger *slog.Logger) (*demo, error) {
	dir, err := os.MkdirTemp("", "refbridge-demo-")
	if err != nil {
		return nil, err
	}
	d := &demo{dir: dir, token: randomSecret(), done: make(chan error, 1)}
	fail := func(err error) (*demo, error) { d.close(); return nil, err }
	if d.profile, err = profile.Load("gambella"); err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fail(fmt.Errorf("demo: listen on %s: %w (choose another with --addr)", addr, err))
	}
	d.bridgeURL = "http://" + ln.Addr().String()
	webhookKey := randomSecret()

	// Primero, with a webhook to the bridge as a deployment would register.
	d.primero = primerotest.New(primerotest.Options{Seed: 1, Webhooks: []primerotest.Webhook{{URL: d.bridgeURL + server.RoutePrimeroWebhook, APIKey: webhookKey}}})
	phone := "+000000000900"
	for _, u := range []struct{ name, full string }{
		{demoCaseWorker, "Demo Caseworker"}, {demoUNHCRUser, "UNHCR focal point (placeholder)"},
		{d.profile.Intake().Owner, "Intake focal point"}, {d.profile.Referrals().FallbackUser, "Fallback contact"},
	} {
		d.primero.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: u.name, FullName: u.full, Email: "demo@example.org", Phone: &phone, Position: "Demo"},
			Password: randomSecret(), Scope: primerotest.ScopeAll, AgencyUniqueID: "UNICEF"})
	}
	apiPassword := randomSecret()
	d.primero.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: demoAPIUser}, Password: apiPassword, Scope: primerotest.ScopeAll,
		Permissions: []string{primerotest.PermSyncExternal}})
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	d.primeroURL = "http://" + pln.Addr().String()
	d.serve(&http.Server{Handler: d.primero.Handler(), ReadHeaderTimeout: 10 * time.Second}, pln, false)

	// DTP behind mutual TLS and a subscription key, certificates made now.
	pki, err := dtptest.NewPKI(dir)
	if err != nil {
		return fail(err)
	}
	subKey := randomSecret()
	d.dtp = dtptest.New(dtptest.Options{Seed: 1, SubscriptionKeys: []string{subKey}, PKI: pki})
	dln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	d.dtpURL = "https://" + dln.Addr().String()
	d.serve(&http.Server{Handler: d.dtp.Handler(), TLSConfig: d.dtp.TLSConfig(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}, dln, true)

	keys, _, err := store.GenerateKeyring()
	if err != nil {
		return fail(err)
	}
	d.app, err = newApp(ctx, appConfig{
		Profile: d.profile, StorePath: filepath.Join(dir, "refbridge.db"), Keys: keys,
		Primero: primero.Config{BaseURL: d.primeroURL, UserName: demoAPIUser, Password: apiPassword, Timeout: 10 * time.Second},
		DTP: dtp.Config{ReferralURL: d.dtpURL + dtptest.PathReferral, DecisionURL: d.dtpURL + dtptest.PathDecision, SubscriptionKey: subKey,
			CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile, CAFile: pki.CAFile, Timeout: 10 * time.Second},
		InboundTokens: []string{d.token}, WebhookKeys: []string{webhookKey},
		PollInterval: 2 * time.Second, PollOverlap: 10 * time.Minute, MaxAttempts: 10, Workers: 8, Logger: logger,
	})
	if err != nil {
		ln.Close()
		return fail(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	d.stop = cancel
	go func() { d.done <- d.app.run(runCtx, ln) }()
	return d, nil
}

func (d *demo) serve(hs *http.Server, ln net.Listener, useTLS bool) {
	d.servers = append(d.servers, hs)
	go func() {
		if useTLS {
			hs.ServeTLS(ln, "", "")
		} else {
			hs.Serve(ln)
		}
	}()
}

// close stops the bridge first (it finishes in-flight work against the
// peers), then the simulators, and deletes the temporary store.
func (d *demo) close() {
	if d.stop != nil {
		d.stop()
		<-d.done
	}
	for _, hs := range d.servers {
		hs.Close()
	}
	if d.primero != nil {
		d.primero.Close()
	}
	os.RemoveAll(d.dir)
}

// flowSummary is one flow's line of the demo summary.
type flowSummary struct {
	Sent      int `json:"sent"`
	Delivered int `json:"delivered"`
	Held      int `json:"held"`
	Rejected  int `json:"rejected"`
	Dead      int `json:"dead"`
}

// demoSummary is computed by comparing the simulators' state with what the
// demo sent, not from the bridge's own bookkeeping.
type demoSummary struct {
	Flows      map[refbridge.Flow]*flowSummary `json:"flows"`
	Lost       int                             `json:"lost"`
	Duplicated int                             `json:"duplicated"`
}

func (s demoSummary) print(w io.Writer) {
	fmt.Fprintln(w, "Summary (from the simulators' state):")
	names := map[refbridge.Flow]string{
		refbridge.FlowIntervention: "proGres → Primero interventions", refbridge.FlowServiceDecision: "Primero → proGres service decisions",
		refbridge.FlowReferral: "Primero → proGres referrals", refbridge.FlowReferralDecision: "proGres → Primero referral decisions",
	}
	for _, f := range refbridge.Flows() {
		fs := s.Flows[f]
		fmt.Fprintf(w, "  %-4s %-38s sent %4d  delivered %4d  held %3d  rejected %3d  dead %3d\n", f, names[f], fs.Sent, fs.Delivered, fs.Held, fs.Rejected, fs.Dead)
	}
	fmt.Fprintf(w, "  lost %d, duplicated %d\n", s.Lost, s.Duplicated)
}

// demoAdmin is the console account the demo creates.
const demoAdmin = "demo.admin"

// consoleLogin creates the demo's admin account with a random password
// nobody sees and returns a one-time login path for it: the demo's
// console needs no typed password.
func (d *demo) consoleLogin(ctx context.Context) (string, error) {
	pw := make([]byte, 24)
	if _, err := rand.Read(pw); err != nil {
		return "", err
	}
	if err := d.app.db.AddUser(ctx, demoAdmin, refbridge.RoleAdmin, "en", hex.EncodeToString(pw)); err != nil {
		return "", fmt.Errorf("demo: console account: %w", err)
	}
	return d.app.console.OneTimeLogin(demoAdmin)
}
