// Package primerotest is a stateful, in-memory simulator of the Primero v2
// REST API (contracts/primero-v2.md). It answers over real HTTP with
// Primero's status codes, envelopes and quirks — 204 on a create with a
// client id, silently ignored filters, subform merge by unique_id, the
// referral state machine that answers 200 to transitions it refuses — so that
// the refbridge client and the engine are tested against the behaviour they
// will meet in the field, not against a friendlier fake.
//
// The simulator is deterministic: ids, tokens and injected faults come from
// Options.Seed and every timestamp from Options.Now, advanced at least one
// millisecond per write so that last_updated_at cursors can be tested.
//
// It runs inside tests (NewServer) and standalone behind
// `refbridge sim primero` (New + Handler).
package primerotest

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"refbridge"
	"refbridge/fault"
)

// Options configures a simulator. The zero value is usable.
type Options struct {
	// TokenTTL is how long a bearer token from POST /api/v2/tokens stays
	// valid (≤v2.10 devise-jwt). Default 1h.
	TokenTTL time.Duration
	// Now is the clock; default time.Now. Writes never reuse a timestamp:
	// each one is at least 1 ms after the previous write.
	Now func() time.Time
	// Seed drives record ids, tokens and the fault injector.
	Seed int64
	// Webhooks are the outbound webhooks the deployment has registered.
	Webhooks []Webhook
	// RecordWrites keeps the body of every create and update request, as
	// received, for Writes (tests of what leaves refbridge).
	RecordWrites bool
	// MaxPer caps `per` on GET /api/v2/cases. Default 1000.
	MaxPer int
	// DisableBasicAuth refuses HTTP Basic so that a test can prove a client
	// uses the bearer token; real Primero accepts Basic on every endpoint.
	DisableBasicAuth bool
	// WebhookClient sends webhooks; default a client with a 10 s timeout.
	WebhookClient *http.Client
}

// Webhook is one registered outbound webhook (primero-v2 §7).
type Webhook struct {
	URL string
	// Events lists "case.create" and/or "case.update"; empty means both.
	Events []string
	// APIKey, when set, is sent as the x-api-key header (as Primero's
	// ApiConnector::Connection does).
	APIKey string
	// BasicAuth, when set, is "user:password" for HTTP Basic.
	BasicAuth string
	// ReadableFields limits the case fields posted (the webhook's role);
	// nil means all fields.
	ReadableFields []string
}

// Scopes of a user's role: which records the user may see.
const (
	ScopeSelf   = "self"   // records the user is associated with
	ScopeGroup  = "group"  // … or that share a user group with the user
	ScopeAgency = "agency" // … or that belong to the user's agency
	ScopeAll    = "all"    // every record
)

// PermSyncExternal lets a user write mark_synced* (sync status write-back).
const PermSyncExternal = "sync_external"

// UserSpec is a Primero user account together with what its role allows.
type UserSpec struct {
	refbridge.User
	Password string
	// Scope is one of the Scope constants; default ScopeAll.
	Scope string
	// AgencyUniqueID is the agency's unique_id (e.g. "agency-unicef"), which
	// records carry in owned_by_agency_id; used for agency scope, default
	// ownership and referral agencies.
	AgencyUniqueID string
	// ReadableFields and WritableFields are the case fields the role's forms
	// expose; nil means all.
	ReadableFields, WritableFields []string
	// Permissions are extra grants, e.g. PermSyncExternal.
	Permissions []string
}

// Sim is the simulator. All methods are safe for concurrent use.
type Sim struct {
	// URL is the base URL (no trailing slash) once NewServer started it.
	URL string

	opts    Options
	now     func() time.Time
	faults  *fault.Injector
	handler http.Handler
	srv     *httptest.Server
	whc     *http.Client

	reqMu    sync.Mutex
	requests map[string]int

	mu         sync.Mutex
	closed     bool
	inflight   int        // webhooks being delivered
	idle       *sync.Cond // signalled when inflight drops to 0
	rng        *rand.Rand
	lastWrite  time.Time
	lastClock  time.Time // the clock's reading at the latest write
	seq        int64
	version    uint64
	cases      map[string]*record
	byCaseID   map[string]*record
	all        []*record // insertion order
	sortCache  map[string][]*record
	sortVer    uint64
	fieldNames map[string]struct{}
	referrals  map[string][]*referral
	users      map[string]*user
	userOrder  []string
	nextUserID int
	tokens     map[string]*token
	logins     map[string]*loginWindow
	syncLog    map[string][]SyncEntry
	webhookLog []WebhookDelivery
	writes     []Write
}

// New returns a simulator that is not listening; serve Handler() yourself.
func New(opts Options) *Sim {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxPer <= 0 {
		opts.MaxPer = 1000
	}
	whc := opts.WebhookClient
	if whc == nil {
		// Its own transport: httptest.Server.Close closes the idle
		// connections of http.DefaultTransport, which breaks a webhook whose
		// connection another test's server close catches between requests.
		whc = &http.Client{Timeout: 10 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	s := &Sim{
		opts:       opts,
		now:        opts.Now,
		whc:        whc,
		requests:   map[string]int{},
		rng:        rand.New(rand.NewPCG(uint64(opts.Seed), 0x5eed_c0de_0000_0001)),
		cases:      map[string]*record{},
		byCaseID:   map[string]*record{},
		sortCache:  map[string][]*record{},
		fieldNames: map[string]struct{}{},
		referrals:  map[string][]*referral{},
		users:      map[string]*user{},
		nextUserID: 1,
		tokens:     map[string]*token{},
		logins:     map[string]*loginWindow{},
		syncLog:    map[string][]SyncEntry{},
	}
	s.idle = sync.NewCond(&s.mu)
	s.faults = fault.New(opts.Seed, s.renderFault)
	routes := s.routes()
	// Every answer carries the simulator's own time in Date, as Rails
	// behind nginx does (net/http would stamp the host's clock instead).
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", s.now().UTC().Format(http.TimeFormat))
		routes.ServeHTTP(w, r)
	})
	return s
}

// NewServer starts the simulator on an httptest.Server, sets s.URL and
// registers Close with tb.Cleanup.
func NewServer(tb testing.TB, opts Options) *Sim {
	tb.Helper()
	s := New(opts)
	s.srv = httptest.NewServer(s.handler)
	s.URL = s.srv.URL
	tb.Cleanup(s.Close)
	return s
}

// Handler returns the HTTP handler serving /api/v2/...
func (s *Sim) Handler() http.Handler { return s.handler }

// Faults returns the fault injector; rules are keyed by route pattern such
// as "GET /api/v2/cases" (see Patterns).
func (s *Sim) Faults() *fault.Injector { return s.faults }

// Close stops the test server, if any, and waits for in-flight webhooks.
// It is idempotent.
func (s *Sim) Close() {
	if s.srv != nil {
		s.srv.Close()
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.WaitWebhooks()
}

// Route patterns, as registered with the ServeMux and as keys for Faults()
// rules and Requests().
const (
	PatternLogin           = "POST /api/v2/tokens"
	PatternLogout          = "DELETE /api/v2/tokens"
	PatternListCases       = "GET /api/v2/cases"
	PatternCreateCase      = "POST /api/v2/cases"
	PatternGetCase         = "GET /api/v2/cases/{id}"
	PatternPatchCase       = "PATCH /api/v2/cases/{id}"
	PatternDeleteCase      = "DELETE /api/v2/cases/{id}"
	PatternListReferrals   = "GET /api/v2/cases/{id}/referrals"
	PatternCreateReferral  = "POST /api/v2/cases/{id}/referrals"
	PatternPatchReferral   = "PATCH /api/v2/cases/{id}/referrals/{rid}"
	PatternDeleteReferral  = "DELETE /api/v2/cases/{id}/referrals/{rid}"
	PatternListUsers       = "GET /api/v2/users"
	PatternReferToUsers    = "GET /api/v2/users/refer-to"
	PatternSyncCase        = "POST /api/v2/cases/{id}/sync"
	patternNotFoundHandler = "/"
)

func (s *Sim) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.count(pattern, s.faults.Wrap(pattern, h)))
	}
	handle(PatternLogin, s.handleLogin)
	handle(PatternLogout, s.handleLogout)
	handle(PatternListCases, s.authed(s.handleListCases))
	handle(PatternCreateCase, s.authed(s.handleCreateCase))
	handle(PatternGetCase, s.authed(s.handleGetCase))
	handle(PatternPatchCase, s.authed(s.handlePatchCase))
	handle(PatternDeleteCase, s.authed(s.handleDeleteCase))
	handle(PatternListReferrals, s.authed(s.handleListReferrals))
	handle(PatternCreateReferral, s.authed(s.handleCreateReferral))
	handle(PatternPatchReferral, s.authed(s.handlePatchReferral))
	handle(PatternDeleteReferral, s.authed(s.handleDeleteReferral))
	handle(PatternListUsers, s.authed(s.handleListUsers))
	handle(PatternReferToUsers, s.authed(s.handleReferTo))
	handle(PatternSyncCase, s.authed(s.handleSyncCase))
	// Rails answers unrouted paths (and unrouted methods) with 404 in the
	// error envelope; the catch-all keeps ServeMux's text 404/405 out.
	mux.HandleFunc(patternNotFoundHandler, func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, r, errNotFound("No route matches ["+r.Method+"] \""+r.URL.Path+"\""))
	})
	return mux
}

// count records every request that reaches a route, before faults apply,
// so that a test can assert how often a client called an endpoint.
func (s *Sim) count(pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.reqMu.Lock()
		s.requests[pattern]++
		s.reqMu.Unlock()
		if s.opts.RecordWrites && (r.Method == http.MethodPost || r.Method == http.MethodPatch) {
			s.recordWrite(pattern, r)
		}
		h.ServeHTTP(w, r)
	})
}

// Requests returns how many requests arrived on a route pattern (see the
// Pattern constants), including those answered by an injected fault.
func (s *Sim) Requests(pattern string) int {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	return s.requests[pattern]
}

// renderFault writes an injected status in Primero's error envelope. The
// injector has already set Retry-After when its rule asks for one.
func (s *Sim) renderFault(w http.ResponseWriter, r *http.Request, status int) {
	writeErr(w, r, &apiError{status: status, message: http.StatusText(status)})
}
