// Package dtptest simulates UNHCR's DTP as refbridge meets it: an Azure API
// Management gateway that wants a subscription key and a client certificate,
// in front of the two proGres endpoints refbridge posts to
// (ReceiveIncomingReferral, ReceiveDecisionOutgoingReferral). The simulator
// validates every message strictly, records every message that reaches it
// (and whether it was accepted) so tests can count doubles, injects seeded
// faults, and plays proGres's side of the
// inbound flows by posting intervention and decision batches to the bridge.
//
// Client certificates are checked in the TLS handshake by default
// (tls.RequireAndVerifyClientCert): a missing or untrusted certificate then
// fails before any HTTP is spoken, which is the harder case for a client to
// classify and the one a gateway with mandatory mutual TLS produces. APIM
// can also accept any certificate at the TLS layer and refuse it in a
// policy with an HTTP answer; CertAtGateway simulates that, and refbridge
// must report "unauthorized" either way.
//
// Personal data: the simulator writes no logs; recorded messages stay in
// memory and die with it.
package dtptest

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"refbridge"
	"refbridge/fault"
)

// Paths and fault endpoints (ServeMux patterns) of the two DTP operations.
const (
	PathReferral = "/ReceiveIncomingReferral"
	PathDecision = "/ReceiveDecisionOutgoingReferral"

	EndpointReferral = http.MethodPost + " " + PathReferral
	EndpointDecision = http.MethodPost + " " + PathDecision
)

// HeaderSubscriptionKey is the APIM subscription key header. It is spelled
// here independently of package dtp, so a typo there fails the tests.
const HeaderSubscriptionKey = "Ocp-Apim-Subscription-Key"

// DefaultSubscriptionKey is accepted when Options.SubscriptionKeys is empty.
const DefaultSubscriptionKey = "dtptest-subscription-key"

// maxBody bounds a request body; DTP messages are a few kilobytes.
const maxBody = 1 << 20

// APIM's texts for refused requests. The key ones are APIM's own; the
// certificate one is the simulator's, since a policy's text is set per API.
const (
	msgMissingKey  = "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API."
	msgInvalidKey  = "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."
	msgInvalidCert = "Access denied due to missing or invalid client certificate."
	msgNotFound    = "Resource not found"
)

// CertCheck says where the simulator checks client certificates.
type CertCheck int

const (
	// CertAtHandshake requires a certificate signed by the PKI's CA in the
	// TLS handshake; without one the connection fails with a TLS alert.
	CertAtHandshake CertCheck = iota
	// CertAtGateway requests a certificate in the handshake but accepts the
	// connection without one, then answers 401 with an APIM body when it is
	// missing or not signed by the CA, as an APIM certificate policy does.
	CertAtGateway
)

// Options configures a Sim.
type Options struct {
	// Seed drives fault injection: the same seed and request order yield the
	// same faults.
	Seed int64
	// SubscriptionKeys are the keys the gateway accepts; empty means
	// {DefaultSubscriptionKey}.
	SubscriptionKeys []string
	// PKI supplies the server certificate and the trusted client CA.
	// NewServer creates one in tb.TempDir() when nil. A Sim made by New
	// without a PKI has no TLS and refuses every request with 401.
	PKI *PKI
	// CertCheck selects how client certificates are enforced.
	CertCheck CertCheck
	// MaxTLSVersion caps the TLS version (e.g. tls.VersionTLS12, which many
	// APIM gateways negotiate); 0 means crypto/tls's default maximum.
	MaxTLSVersion uint16
	// Now stamps received messages; default time.Now.
	Now func() time.Time
	// BridgeClient sends the proGres-side posts (PostInterventions…);
	// default a client with a 30s timeout. Set it to reach a TLS bridge.
	BridgeClient *http.Client
}

// Kind is the DTP operation a message was posted to.
type Kind string

// Message kinds.
const (
	KindReferral Kind = "referral" // ReceiveIncomingReferral (F2)
	KindStatus   Kind = "status"   // ReceiveDecisionOutgoingReferral (F1 callbacks, F1d decisions)
)

// Message is one request that got past the gateway (key and certificate) and
// the fault injector, as DTP's backend received it.
type Message struct {
	Kind Kind
	// Body is the request body exactly as received; do not modify it.
	Body json.RawMessage
	// Referral is Body decoded, for KindReferral (nil if it did not decode).
	Referral *refbridge.DTPReferral
	// Status is Body decoded, for KindStatus (nil if it did not decode).
	Status *refbridge.InterventionStatus
	// Problems is why the simulator answered 400; empty when it accepted.
	Problems []refbridge.Problem
	// ClientCert is the common name of the client certificate presented.
	ClientCert string
	// At is when the message was received (Options.Now).
	At time.Time
}

// Accepted reports whether the simulator answered 200.
func (m Message) Accepted() bool { return len(m.Problems) == 0 }

// StatusKey is the natural key of a status message: DTP should see each
// (intervention, status) pair once.
type StatusKey struct {
	InterventionNumber string
	Status             string
}

// Sim is a simulated DTP gateway. It is safe for concurrent use.
type Sim struct {
	// URL is the base URL, set by NewServer; set it yourself when serving
	// Handler on your own listener, so ReferralURL/DecisionURL work.
	URL string

	pki     *PKI
	check   CertCheck
	maxTLS  uint16
	now     func() time.Time
	faults  *fault.Injector
	handler http.Handler
	bridge  *http.Client
	srv     *httptest.Server

	mu       sync.Mutex
	keys     map[string]bool
	received []Message
}

// New returns a simulator that is not serving yet: mount Handler on a server
// configured with TLSConfig (what `refbridge sim dtp` does), or use NewServer.
func New(opts Options) *Sim {
	s := &Sim{
		pki:    opts.PKI,
		check:  opts.CertCheck,
		maxTLS: opts.MaxTLSVersion,
		now:    opts.Now,
		bridge: opts.BridgeClient,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.bridge == nil {
		s.bridge = &http.Client{Timeout: 30 * time.Second}
	}
	keys := opts.SubscriptionKeys
	if len(keys) == 0 {
		keys = []string{DefaultSubscriptionKey}
	}
	s.SetSubscriptionKeys(keys...)
	s.faults = fault.New(opts.Seed, renderFault)

	mux := http.NewServeMux()
	for _, op := range []struct {
		endpoint string
		kind     Kind
	}{{EndpointReferral, KindReferral}, {EndpointDecision, KindStatus}} {
		mux.Handle(op.endpoint, s.gate(s.faults.Wrap(op.endpoint, s.receive(op.kind))))
	}
	// APIM answers an operation it does not publish (wrong path or method)
	// with 404 in its own envelope.
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeAPIM(w, http.StatusNotFound, msgNotFound, nil)
	})
	s.handler = mux
	return s
}

// NewServer starts a simulator on an httptest TLS server, closed by
// tb.Cleanup. A nil opts.PKI gets a fresh one in tb.TempDir().
func NewServer(tb testing.TB, opts Options) *Sim {
	tb.Helper()
	if opts.PKI == nil {
		pki, err := NewPKI(tb.TempDir())
		if err != nil {
			tb.Fatal(err)
		}
		opts.PKI = pki
	}
	s := New(opts)
	srv := httptest.NewUnstartedServer(s.handler)
	srv.TLS = s.TLSConfig()
	// Refused handshakes are the point of several tests; keep them out of
	// the test output.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	s.srv = srv
	s.URL = srv.URL
	tb.Cleanup(s.Close)
	return s
}

// Handler returns the gateway's HTTP handler.
func (s *Sim) Handler() http.Handler { return s.handler }

// TLSConfig returns the server TLS configuration for the chosen CertCheck,
// or nil when the simulator has no PKI.
func (s *Sim) TLSConfig() *tls.Config {
	if s.pki == nil {
		return nil
	}
	cfg := s.pki.ServerTLS()
	cfg.MaxVersion = s.maxTLS
	if s.check == CertAtGateway {
		cfg.ClientAuth = tls.RequestClientCert
	}
	return cfg
}

// Server returns the httptest server started by NewServer, nil otherwise.
func (s *Sim) Server() *httptest.Server { return s.srv }

// PKI returns the simulator's certificate authority (nil if none).
func (s *Sim) PKI() *PKI { return s.pki }

// ReferralURL is the ReceiveIncomingReferral endpoint (dtp.Config.ReferralURL).
func (s *Sim) ReferralURL() string { return s.URL + PathReferral }

// DecisionURL is the ReceiveDecisionOutgoingReferral endpoint (dtp.Config.DecisionURL).
func (s *Sim) DecisionURL() string { return s.URL + PathDecision }

// Close stops the server started by NewServer; it may be called twice.
func (s *Sim) Close() {
	if s.srv != nil {
		s.srv.Close()
	}
}

// Faults returns the fault injector; endpoints are EndpointReferral and
// EndpointDecision (or "*"). Faults are injected after the gateway's key
// and certificate checks, and faulted requests are not recorded.
func (s *Sim) Faults() *fault.Injector { return s.faults }

// SetSubscriptionKeys replaces the accepted keys (key rotation tests).
func (s *Sim) SetSubscriptionKeys(keys ...string) {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	s.mu.Lock()
	s.keys = m
	s.mu.Unlock()
}

// gate plays the APIM checks that come before the backend: the subscription
// key, then the client certificate (again, in CertAtHandshake mode, so a
// Handler served without TLS fails closed).
func (s *Sim) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(HeaderSubscriptionKey)
		s.mu.Lock()
		known := s.keys[key]
		s.mu.Unlock()
		switch {
		case key == "":
			writeAPIM(w, http.StatusUnauthorized, msgMissingKey, nil)
			return
		case !known:
			writeAPIM(w, http.StatusUnauthorized, msgInvalidKey, nil)
			return
		}
		if r.TLS == nil || s.pki == nil || s.pki.verifyClient(r.TLS.PeerCertificates) != nil {
			writeAPIM(w, http.StatusUnauthorized, msgInvalidCert, nil)
			return
		}
		// Buffer the body before the fault injector, as APIM buffers it
		// before forwarding. It also matters for hangs: net/http notices a
		// client that went away (and cancels r.Context) only once the body
		// has been read to the end.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeAPIM(w, http.StatusRequestEntityTooLarge, "Request body too large", nil)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// receive is DTP's backend for one operation: validate, record, answer.
func (s *Sim) receive(kind Kind) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body) // gate buffered it: reading cannot fail
		msg := Message{Kind: kind, Body: body, At: s.now()}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			msg.ClientCert = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		switch kind {
		case KindReferral:
			msg.Referral, msg.Problems = validateReferral(r.Header, body)
		case KindStatus:
			msg.Status, msg.Problems = validateStatus(r.Header, body)
		}
		s.mu.Lock()
		s.received = append(s.received, msg)
		s.mu.Unlock()
		if !msg.Accepted() {
			p := msg.Problems[0]
			text := fmt.Sprintf("Invalid request body: %s %s", p.Field, p.Rule)
			writeAPIM(w, http.StatusBadRequest, text, msg.Problems)
			return
		}
		// DTP's success body is not documented; the client ignores it.
		writeAPIM(w, http.StatusOK, "Accepted", nil)
	})
}

// Received returns every message the backend received, accepted or not, in
// order of arrival.
func (s *Sim) Received() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

// Referrals returns the accepted ReceiveIncomingReferral messages.
func (s *Sim) Referrals() []refbridge.DTPReferral {
	var out []refbridge.DTPReferral
	for _, m := range s.Received() {
		if m.Accepted() && m.Referral != nil {
			out = append(out, *m.Referral)
		}
	}
	return out
}

// Statuses returns the accepted ReceiveDecisionOutgoingReferral messages.
func (s *Sim) Statuses() []refbridge.InterventionStatus {
	var out []refbridge.InterventionStatus
	for _, m := range s.Received() {
		if m.Accepted() && m.Status != nil {
			out = append(out, *m.Status)
		}
	}
	return out
}

// ReferralCounts counts accepted referrals per org-referral id.
func (s *Sim) ReferralCounts() map[string]int {
	n := map[string]int{}
	for _, r := range s.Referrals() {
		n[r.ID]++
	}
	return n
}

// StatusCounts counts accepted status messages per intervention and status.
func (s *Sim) StatusCounts() map[StatusKey]int {
	n := map[StatusKey]int{}
	for _, st := range s.Statuses() {
		n[StatusKey{st.InterventionNumber, st.Status}]++
	}
	return n
}

// Doubles lists every natural key DTP accepted more than once, e.g.
// `referral c0c0…#0a1b2c3d4e5f ×2`; empty when nothing was doubled.
func (s *Sim) Doubles() []string {
	var out []string
	for id, n := range s.ReferralCounts() {
		if n > 1 {
			out = append(out, fmt.Sprintf("referral %s ×%d", id, n))
		}
	}
	for k, n := range s.StatusCounts() {
		if n > 1 {
			out = append(out, fmt.Sprintf("status %s %q ×%d", k.InterventionNumber, k.Status, n))
		}
	}
	slices.Sort(out)
	return out
}

// Reset forgets every received message; faults and keys are kept.
func (s *Sim) Reset() {
	s.mu.Lock()
	s.received = nil
	s.mu.Unlock()
}

// apimError is APIM's error envelope. Problems is the simulator's own
// addition on 400, naming each refused field; DTP's is not documented.
type apimError struct {
	StatusCode int                 `json:"statusCode"`
	Message    string              `json:"message"`
	Problems   []refbridge.Problem `json:"problems,omitempty"`
}

func writeAPIM(w http.ResponseWriter, status int, message string, problems []refbridge.Problem) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The write error is the client's problem (it went away); nothing to do.
	_ = json.NewEncoder(w).Encode(apimError{StatusCode: status, Message: message, Problems: problems})
}

// renderFault writes an injected status as APIM would, after fault has set
// Retry-After.
func renderFault(w http.ResponseWriter, _ *http.Request, status int) {
	msg := http.StatusText(status)
	switch status {
	case http.StatusTooManyRequests:
		secs, err := strconv.Atoi(w.Header().Get("Retry-After"))
		if err != nil {
			secs = 1
		}
		msg = fmt.Sprintf("Rate limit is exceeded. Try again in %d seconds.", secs)
	case http.StatusUnauthorized:
		msg = msgInvalidKey
	}
	writeAPIM(w, status, msg, nil)
}
