package dtp_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"refbridge"
	"refbridge/dtp"
	"refbridge/dtp/dtptest"
	"refbridge/egress"
	"refbridge/fault"
	"refbridge/profile"
)

// fixtures is the repository's byte-identical copy of shared/fixtures, so the
// tests run from a clean clone.
const fixtures = "../testdata/fixtures"

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// filtered passes v through the EgressFilter with the Gambella profile's
// general allow-lists, as the engine does before every send.
func filtered[T egress.Body](t *testing.T, v T) egress.Message[T] {
	t.Helper()
	p, err := profile.Load("gambella")
	if err != nil {
		t.Fatal(err)
	}
	m := egress.Filter(p, "", v)
	if err := m.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func decode[T any](t *testing.T, raw []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// jsonEqual compares two JSON documents by value: key order and spacing
// aside, byte for byte the same message.
func jsonEqual(t *testing.T, want, got []byte) {
	t.Helper()
	var w, g any
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want: %v", err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got: %v", err)
	}
	if !reflect.DeepEqual(w, g) {
		t.Errorf("DTP received\n%s\nwant\n%s", got, want)
	}
}

// waits replaces the retry wait: it records what was asked for, runs hook
// (e.g. to clear faults after the n-th wait) and returns at once.
type waits struct {
	mu   sync.Mutex
	got  []time.Duration
	hook func(n int)
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.got = append(w.got, d)
	n := len(w.got)
	w.mu.Unlock()
	if w.hook != nil {
		w.hook(n)
	}
	return ctx.Err()
}

func (w *waits) list() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.got)
}

// setup starts a simulator and returns a client configuration for it with
// fast in-line retries whose waits are recorded instead of slept.
func setup(t *testing.T, opts dtptest.Options) (*dtptest.Sim, dtp.Config, *waits) {
	t.Helper()
	sim := dtptest.NewServer(t, opts)
	pki := sim.PKI()
	w := &waits{}
	return sim, dtp.Config{
		ReferralURL:     sim.ReferralURL(),
		DecisionURL:     sim.DecisionURL(),
		SubscriptionKey: dtptest.DefaultSubscriptionKey,
		CertFile:        pki.ClientCertFile,
		KeyFile:         pki.ClientKeyFile,
		CAFile:          pki.CAFile,
		Timeout:         5 * time.Second,
		Retry:           refbridge.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, MaxRetryAfter: 10 * time.Second},
		Sleep:           w.sleep,
	}, w
}

func newClient(t *testing.T, cfg dtp.Config) *dtp.Client {
	t.Helper()
	c, err := dtp.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// decision is a valid F1d decision; n makes its natural key unique.
func decision(n int) refbridge.InterventionStatus {
	caseID, user := "c0c0c0c0-0000-4000-8000-000000000001", "test_caseworker"
	return refbridge.InterventionStatus{
		CaseID:             &caseID,
		PrimeroUser:        &user,
		InterventionNumber: fmt.Sprintf("TST-24-PRTITV-%07d", n),
		Status:             refbridge.StatusAcknowledged,
		ClosureReason:      "No reason specified.",
		RequestType:        refbridge.RequestTypeDecisionOutgoingReferral,
	}
}

func wantCode(t *testing.T, err error, code refbridge.ErrorCode) *refbridge.Error {
	t.Helper()
	if got := refbridge.ErrorCodeOf(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
	var e *refbridge.Error
	if code != "" && (!errors.As(err, &e) || e.Peer != "dtp") {
		t.Fatalf("error %v: want a *refbridge.Error from peer dtp", err)
	}
	return e
}

func TestSendFixtures(t *testing.T) {
	t.Parallel()
	sendReferral := func(ctx context.Context, c *dtp.Client, raw []byte) error {
		return c.SendReferral(ctx, filtered(t, decode[refbridge.DTPReferral](t, raw)))
	}
	sendStatus := func(ctx context.Context, c *dtp.Client, raw []byte) error {
		return c.SendInterventionStatus(ctx, filtered(t, decode[refbridge.InterventionStatus](t, raw)))
	}
	tests := []struct {
		file string
		kind dtptest.Kind
		send func(context.Context, *dtp.Client, []byte) error
	}{
		{"dtp-outbound-referral.json", dtptest.KindReferral, sendReferral},
		{"dtp-callback-success.json", dtptest.KindStatus, sendStatus},
		{"dtp-callback-failure.json", dtptest.KindStatus, sendStatus},
		{"dtp-decision-outgoing.json", dtptest.KindStatus, sendStatus},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			sim, cfg, _ := setup(t, dtptest.Options{})
			raw := readFixture(t, tt.file)
			if err := tt.send(t.Context(), newClient(t, cfg), raw); err != nil {
				t.Fatalf("send: %v", err)
			}
			got := sim.Received()
			if len(got) != 1 {
				t.Fatalf("DTP received %d messages, want 1", len(got))
			}
			m := got[0]
			if !m.Accepted() || m.Kind != tt.kind || m.ClientCert != "refbridge" {
				t.Errorf("received kind %s from %q, problems %v; want accepted %s from refbridge", m.Kind, m.ClientCert, m.Problems, tt.kind)
			}
			jsonEqual(t, raw, m.Body)
			if d := sim.Doubles(); len(d) > 0 {
				t.Errorf("doubles: %v", d)
			}
		})
	}
}

// TestCredentialsRefused: a bad subscription key or client certificate is
// EUnauthorized whether the gateway refuses the certificate in the TLS
// handshake (an alert, no HTTP status) or in a policy (HTTP 401), is not
// retried, and reaches nothing behind the gateway.
func TestCredentialsRefused(t *testing.T) {
	t.Parallel()
	const wrongKey = "wrong-subscription-key-7f3a"
	tests := []struct {
		name   string
		adjust func(cfg *dtp.Config, pki *dtptest.PKI)
		noCert bool
		tlsErr bool // refused in the handshake when the simulator checks there
	}{
		{name: "wrong subscription key", adjust: func(cfg *dtp.Config, _ *dtptest.PKI) { cfg.SubscriptionKey = wrongKey }},
		{name: "missing client certificate", noCert: true, tlsErr: true},
		{name: "certificate from an untrusted CA", tlsErr: true, adjust: func(cfg *dtp.Config, pki *dtptest.PKI) {
			cfg.CertFile, cfg.KeyFile = pki.UntrustedCertFile, pki.UntrustedKeyFile
		}},
	}
	// TLS 1.2 matters: the client learns of a refused certificate during the
	// handshake there, but only when reading the response in TLS 1.3.
	gateways := []struct {
		name  string
		check dtptest.CertCheck
		tls   uint16
	}{
		{"handshake TLS 1.3", dtptest.CertAtHandshake, tls.VersionTLS13},
		{"handshake TLS 1.2", dtptest.CertAtHandshake, tls.VersionTLS12},
		{"gateway policy", dtptest.CertAtGateway, 0},
	}
	for _, gw := range gateways {
		for _, tt := range tests {
			t.Run(tt.name+"/"+gw.name, func(t *testing.T) {
				t.Parallel()
				check := gw.check
				sim, cfg, w := setup(t, dtptest.Options{CertCheck: check, MaxTLSVersion: gw.tls})
				if tt.adjust != nil {
					tt.adjust(&cfg, sim.PKI())
				}
				c := newClient(t, cfg)
				if tt.noCert {
					dtp.PresentNoCertificate(c)
				}
				err := c.SendInterventionStatus(t.Context(), filtered(t, decision(1)))
				e := wantCode(t, err, refbridge.EUnauthorized)
				wantStatus := 401
				if tt.tlsErr && check == dtptest.CertAtHandshake {
					wantStatus = 0
				}
				if e.Status != wantStatus {
					t.Errorf("status = %d, want %d (%v)", e.Status, wantStatus, err)
				}
				if strings.Contains(err.Error(), wrongKey) {
					t.Errorf("error quotes the subscription key: %v", err)
				}
				if n := len(sim.Received()); n != 0 {
					t.Errorf("DTP received %d messages past the gateway", n)
				}
				if len(w.list()) != 0 {
					t.Errorf("retried after %v", w.list())
				}
			})
		}
	}
}

// TestRetries checks RetryUnsent against injected gateway answers: only what
// DTP provably did not process (429, 503) is sent again.
func TestRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		rule         fault.Rule
		clearAfter   int // faults are cleared after this many waits; 0 = never
		wantCode     refbridge.ErrorCode
		wantStatus   int
		wantInjected int
		wantWaits    int
		minWait      time.Duration // each wait at least
		retryAfter   time.Duration // left on the returned error
	}{
		{name: "429 Retry-After honoured then success", rule: fault.Rule{ErrorRate: 1, Statuses: []int{429}, RetryAfter: 2 * time.Second},
			clearAfter: 1, wantInjected: 1, wantWaits: 1, minWait: 2 * time.Second},
		{name: "503 retried until success", rule: fault.Rule{ErrorRate: 1, Statuses: []int{503}},
			clearAfter: 2, wantInjected: 2, wantWaits: 2},
		{name: "503 on every attempt gives up", rule: fault.Rule{ErrorRate: 1, Statuses: []int{503}, RetryAfter: time.Second},
			wantCode: refbridge.ETransient, wantStatus: 503, wantInjected: 3, wantWaits: 2, minWait: time.Second, retryAfter: time.Second},
		{name: "429 longer than MaxRetryAfter goes back to the caller", rule: fault.Rule{ErrorRate: 1, Statuses: []int{429}, RetryAfter: time.Minute},
			wantCode: refbridge.ERateLimited, wantStatus: 429, wantInjected: 1, retryAfter: time.Minute},
		{name: "500 not retried", rule: fault.Rule{ErrorRate: 1, Statuses: []int{500}},
			wantCode: refbridge.ETransient, wantStatus: 500, wantInjected: 1},
		{name: "502 not retried", rule: fault.Rule{ErrorRate: 1, Statuses: []int{502}},
			wantCode: refbridge.ETransient, wantStatus: 502, wantInjected: 1},
		{name: "dropped connection not retried", rule: fault.Rule{DropRate: 1},
			wantCode: refbridge.ETransient, wantInjected: 1},
		{name: "401 from the gateway", rule: fault.Rule{ErrorRate: 1, Statuses: []int{401}},
			wantCode: refbridge.EUnauthorized, wantStatus: 401, wantInjected: 1},
		{name: "403 for the client certificate", rule: fault.Rule{ErrorRate: 1, Statuses: []int{403}},
			wantCode: refbridge.EForbidden, wantStatus: 403, wantInjected: 1},
	}
	status := filtered(t, decision(1))
	referral := filtered(t, decode[refbridge.DTPReferral](t, readFixture(t, "dtp-outbound-referral.json")))
	sends := []struct {
		name     string
		endpoint string
		send     func(context.Context, *dtp.Client) error
	}{
		{"status", dtptest.EndpointDecision, func(ctx context.Context, c *dtp.Client) error {
			return c.SendInterventionStatus(ctx, status)
		}},
		{"referral", dtptest.EndpointReferral, func(ctx context.Context, c *dtp.Client) error {
			return c.SendReferral(ctx, referral)
		}},
	}
	for _, tt := range tests {
		for _, s := range sends {
			t.Run(tt.name+"/"+s.name, func(t *testing.T) {
				t.Parallel()
				sim, cfg, w := setup(t, dtptest.Options{Seed: 1})
				sim.Faults().Set(s.endpoint, tt.rule)
				w.hook = func(n int) {
					if n == tt.clearAfter {
						sim.Faults().Clear()
					}
				}
				err := s.send(t.Context(), newClient(t, cfg))
				if tt.wantCode == "" && err != nil {
					t.Fatalf("send: %v", err)
				}
				if e := wantCode(t, err, tt.wantCode); e != nil {
					if e.Status != tt.wantStatus || e.RetryAfter != tt.retryAfter {
						t.Errorf("status %d, Retry-After %v; want %d, %v (%v)", e.Status, e.RetryAfter, tt.wantStatus, tt.retryAfter, err)
					}
				}
				if n := sim.Faults().Injected(s.endpoint); n != tt.wantInjected {
					t.Errorf("attempts refused = %d, want %d", n, tt.wantInjected)
				}
				got := w.list()
				if len(got) != tt.wantWaits {
					t.Errorf("waits = %v, want %d", got, tt.wantWaits)
				}
				for _, d := range got {
					if d < tt.minWait {
						t.Errorf("waited %v, want at least %v (Retry-After)", d, tt.minWait)
					}
				}
				wantRecorded := 0
				if tt.wantCode == "" {
					wantRecorded = 1
				}
				if n := len(sim.Received()); n != wantRecorded {
					t.Errorf("DTP received %d messages, want %d", n, wantRecorded)
				}
			})
		}
	}
}

// TestNoAnswer: a hanging DTP costs one Timeout and is transient; the
// caller's cancellation ends the call at once. Neither is retried: the
// message may have been processed.
func TestNoAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		timeout time.Duration
		ctx     func(context.Context) (context.Context, context.CancelFunc)
		wantIs  error
	}{
		{"hanging DTP times out", 300 * time.Millisecond, context.WithCancel, context.DeadlineExceeded},
		{"cancelled while waiting", time.Minute, func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(200*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"cancelled before sending", time.Minute, func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			return ctx, cancel
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, cfg, w := setup(t, dtptest.Options{})
			sim.Faults().Set(dtptest.EndpointDecision, fault.Rule{HangRate: 1, HangFor: time.Minute})
			cfg.Timeout = tt.timeout
			ctx, cancel := tt.ctx(t.Context())
			defer cancel()
			start := time.Now()
			err := newClient(t, cfg).SendInterventionStatus(ctx, filtered(t, decision(1)))
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Errorf("returned after %v", elapsed)
			}
			wantCode(t, err, refbridge.ETransient)
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v: want errors.Is %v", err, tt.wantIs)
			}
			if len(w.list()) != 0 {
				t.Errorf("retried after %v", w.list())
			}
			if n := len(sim.Received()); n != 0 {
				t.Errorf("DTP received %d messages", n)
			}
		})
	}
}

// TestInvalidMessage: a message the simulator refuses comes back EInvalid
// with the field named, and is not retried.
func TestInvalidMessage(t *testing.T) {
	t.Parallel()
	sim, cfg, w := setup(t, dtptest.Options{})
	st := decision(1)
	st.Status = "Acknowledged" // DTP's code is lower case
	err := newClient(t, cfg).SendInterventionStatus(t.Context(), filtered(t, st))
	e := wantCode(t, err, refbridge.EInvalid)
	if e.Status != 400 || !slices.Contains(e.Problems, refbridge.Problem{Field: "status", Rule: "unknown_code", Detail: "refused by DTP"}) {
		t.Errorf("status %d, problems %v: want 400 naming status unknown_code", e.Status, e.Problems)
	}
	if len(w.list()) != 0 {
		t.Errorf("retried after %v", w.list())
	}
	if got := sim.Received(); len(got) != 1 || got[0].Accepted() || len(sim.Statuses()) != 0 {
		t.Errorf("want one refused message recorded, got %+v", got)
	}
}

// TestLocalChecks: a message without its natural key never leaves.
func TestLocalChecks(t *testing.T) {
	t.Parallel()
	sim, cfg, _ := setup(t, dtptest.Options{})
	c := newClient(t, cfg)
	noNumber := decision(1)
	noNumber.InterventionNumber = ""
	for name, err := range map[string]error{
		"referral without id":         c.SendReferral(t.Context(), filtered(t, refbridge.DTPReferral{RequestType: refbridge.RequestTypeIncomingReferral})),
		"status without intervention": c.SendInterventionStatus(t.Context(), filtered(t, noNumber)),
	} {
		if refbridge.ErrorCodeOf(err) != refbridge.EInvalid {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	if n := len(sim.Received()); n != 0 {
		t.Errorf("DTP received %d messages", n)
	}
}

// TestUnfilteredBodiesRefused: a body that did not pass the EgressFilter —
// the zero Message, the only one code outside package egress can make — is
// refused with an invalid error naming the filter, and never leaves.
func TestUnfilteredBodiesRefused(t *testing.T) {
	t.Parallel()
	sim, cfg, _ := setup(t, dtptest.Options{})
	c := newClient(t, cfg)
	for name, err := range map[string]error{
		"SendReferral":           c.SendReferral(t.Context(), egress.Message[refbridge.DTPReferral]{}),
		"SendInterventionStatus": c.SendInterventionStatus(t.Context(), egress.Message[refbridge.InterventionStatus]{}),
	} {
		if refbridge.ErrorCodeOf(err) != refbridge.EInvalid || !strings.Contains(fmt.Sprint(err), "egress.Filter") {
			t.Errorf("%s: got %v, want invalid naming egress.Filter", name, err)
		}
	}
	if n := len(sim.Received()); n != 0 {
		t.Errorf("DTP received %d messages", n)
	}
}

// TestSentAsFiltered: what reaches DTP is the body as the filter sealed it,
// byte for byte, without the fields an agency's allow-list leaves out.
func TestSentAsFiltered(t *testing.T) {
	t.Parallel()
	src, err := profile.Read("gambella")
	if err != nil {
		t.Fatal(err)
	}
	// UNICEF's ISP keeps the closure reason from proGres.
	const anchor = "isp:\n"
	p, err := profile.Parse([]byte(strings.Replace(string(src), anchor, anchor+`  agencies:
    UNICEF:
      primero_to_progres:
        status: [case_id, primero_user, progres_interventionnumber, status, request_type]
`, 1)))
	if err != nil {
		t.Fatal(err, refbridge.ErrorProblems(err))
	}
	sim, cfg, _ := setup(t, dtptest.Options{})
	msg := egress.Filter(p, "UNICEF", decision(1))
	if err := newClient(t, cfg).SendInterventionStatus(t.Context(), msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := sim.Received()
	if len(got) != 1 {
		t.Fatalf("DTP received %d messages, want 1", len(got))
	}
	want := `{"case_id":"c0c0c0c0-0000-4000-8000-000000000001","primero_user":"test_caseworker","progres_interventionnumber":"TST-24-PRTITV-0000001",` +
		`"status":"` + refbridge.StatusAcknowledged + `","request_type":"` + refbridge.RequestTypeDecisionOutgoingReferral + `"}`
	if string(got[0].Body) != want {
		t.Errorf("DTP received\n%s\nwant\n%s", got[0].Body, want)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReload rotates the client certificate in place: a half-written
// rotation is refused and the old pair kept; a good one is presented on the
// next connection.
func TestReload(t *testing.T) {
	t.Parallel()
	sim, cfg, _ := setup(t, dtptest.Options{})
	pki := sim.PKI()
	dir := t.TempDir()
	cfg.CertFile, cfg.KeyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	copyFile(t, pki.ClientCertFile, cfg.CertFile)
	copyFile(t, pki.ClientKeyFile, cfg.KeyFile)
	c := newClient(t, cfg)

	presented := func(n int) string {
		t.Helper()
		if err := c.SendInterventionStatus(t.Context(), filtered(t, decision(n))); err != nil {
			t.Fatalf("send %d: %v", n, err)
		}
		got := sim.Received()
		return got[len(got)-1].ClientCert
	}
	if cn := presented(1); cn != "refbridge" {
		t.Fatalf("first certificate %q, want refbridge", cn)
	}

	newCert, newKey, err := pki.IssueClient("rotated")
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, newCert, cfg.CertFile) // the key is not written yet
	err = c.Reload()
	wantCode(t, err, refbridge.EInvalid)
	if !strings.Contains(err.Error(), cfg.KeyFile) {
		t.Errorf("reload error does not name the key file: %v", err)
	}
	if cn := presented(2); cn != "refbridge" {
		t.Errorf("after a failed reload the client presents %q, want the old refbridge", cn)
	}

	copyFile(t, newKey, cfg.KeyFile)
	if err := c.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if cn := presented(3); cn != "rotated" {
		t.Errorf("after reload the client presents %q, want rotated", cn)
	}
}

func TestSetSubscriptionKey(t *testing.T) {
	t.Parallel()
	sim, cfg, _ := setup(t, dtptest.Options{})
	c := newClient(t, cfg)
	sim.SetSubscriptionKeys("rotated-key")
	wantCode(t, c.SendInterventionStatus(t.Context(), filtered(t, decision(1))), refbridge.EUnauthorized)
	if err := c.SetSubscriptionKey("rotated-key"); err != nil {
		t.Fatal(err)
	}
	if err := c.SendInterventionStatus(t.Context(), filtered(t, decision(1))); err != nil {
		t.Fatalf("with the rotated key: %v", err)
	}
	wantCode(t, c.SetSubscriptionKey(""), refbridge.EInvalid)
}

// writeExpiredPair writes a self-signed certificate that expired yesterday.
func writeExpiredPair(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "expired"},
		NotBefore:    time.Now().Add(-48 * time.Hour),
		NotAfter:     time.Now().Add(-24 * time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "expired.pem"), filepath.Join(dir, "expired-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestNewConfigErrors: every bad setting is named, files by path, and no
// error quotes key material.
func TestNewConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki, err := dtptest.NewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	expiredCert, expiredKey := writeExpiredPair(t, dir)
	valid := dtp.Config{
		ReferralURL: "https://dtp.example.org/ReceiveIncomingReferral", DecisionURL: "https://dtp.example.org/ReceiveDecisionOutgoingReferral",
		SubscriptionKey: "k", CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile, CAFile: pki.CAFile,
	}
	tests := []struct {
		name   string
		adjust func(*dtp.Config)
		field  string
		rule   string
		named  string // must appear in err.Error()
	}{
		{"no referral URL", func(c *dtp.Config) { c.ReferralURL = "" }, "referral_url", "required", ""},
		{"plain http", func(c *dtp.Config) { c.DecisionURL = "http://dtp.example.org/x" }, "decision_url", "invalid", ""},
		{"no subscription key", func(c *dtp.Config) { c.SubscriptionKey = "" }, "subscription_key", "required", ""},
		{"no certificate", func(c *dtp.Config) { c.CertFile = "" }, "cert_file", "required", ""},
		{"certificate file missing", func(c *dtp.Config) { c.CertFile = missing }, "cert_file", "unreadable", missing},
		{"key file missing", func(c *dtp.Config) { c.KeyFile = missing }, "key_file", "unreadable", missing},
		{"key of another certificate", func(c *dtp.Config) { c.KeyFile = pki.UntrustedKeyFile }, "cert_file", "invalid", pki.UntrustedKeyFile},
		{"key file holds the certificate", func(c *dtp.Config) { c.KeyFile = c.CertFile }, "cert_file", "invalid", pki.ClientCertFile},
		{"certificate file holds the key", func(c *dtp.Config) { c.CertFile = c.KeyFile }, "cert_file", "invalid", pki.ClientKeyFile},
		{"expired certificate", func(c *dtp.Config) { c.CertFile, c.KeyFile = expiredCert, expiredKey }, "cert_file", "expired", expiredCert},
		{"CA file without a certificate", func(c *dtp.Config) { c.CAFile = garbage }, "ca_file", "invalid", garbage},
		{"negative timeout", func(c *dtp.Config) { c.Timeout = -time.Second }, "timeout", "invalid", ""},
	}
	var keyLines []string // base64 lines of every private key in play
	for _, f := range []string{pki.ClientKeyFile, pki.UntrustedKeyFile, expiredKey} {
		for line := range strings.Lines(string(readFile(t, f))) {
			if line = strings.TrimSpace(line); len(line) > 16 && !strings.HasPrefix(line, "-----") {
				keyLines = append(keyLines, line[:16])
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tt.adjust(&cfg)
			c, err := dtp.New(cfg)
			if c != nil {
				t.Fatal("New returned a client")
			}
			e := wantCode(t, err, refbridge.EInvalid)
			found := false
			for _, p := range e.Problems {
				found = found || (p.Field == tt.field && p.Rule == tt.rule)
			}
			if !found {
				t.Errorf("problems %v: want %s %s", e.Problems, tt.field, tt.rule)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.named) || !strings.Contains(msg, tt.field) {
				t.Errorf("error %q: want it to name %s and %q", msg, tt.field, tt.named)
			}
			for _, l := range keyLines {
				if strings.Contains(msg, l) {
					t.Fatalf("error quotes key material: %q", msg)
				}
			}
		})
	}
	if _, err := dtp.New(valid); err != nil {
		t.Errorf("valid configuration: %v", err)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(data)
}

// TestDecodeError reads APIM's envelope without copying its sentence.
func TestDecodeError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		body     string
		problems []refbridge.Problem
		noText   string
	}{
		{"invalid key", 401, `{"statusCode":401,"message":"Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."}`, nil, "Access denied"},
		{"field problems kept, sentences dropped", 400,
			`{"statusCode":400,"message":"bad","problems":[{"field":"sex","rule":"unknown_code","detail":"value Testchild"},{"field":"a sentence with Testchild","rule":"x"}]}`,
			[]refbridge.Problem{{Field: "sex", Rule: "unknown_code", Detail: "refused by DTP"}}, "Testchild"},
		{"not APIM", 502, `<html>Bad gateway</html>`, nil, "html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := dtp.DecodeError(tt.status, nil, []byte(tt.body))
			if e.Code != "" {
				t.Errorf("code %q: the status decides (peerhttp)", e.Code)
			}
			if !reflect.DeepEqual(e.Problems, tt.problems) {
				t.Errorf("problems %v, want %v", e.Problems, tt.problems)
			}
			if strings.Contains(e.Error(), tt.noText) {
				t.Errorf("error %q copies the body", e.Error())
			}
		})
	}
}
