// Package console is refbridge's operator console (issue #8): server-rendered
// pages (html/template, no script) for the in-country focal point, the
// admin and the auditor — what each flow did, where a referral is, what is
// held or dead-lettered and why, retry or discard with a reason, and the
// audit trail. It is served by the same binary under Prefix.
//
// Accounts and sessions live in the store (argon2id passwords, hashed
// session tokens); every state-changing request must be same-origin
// (http.CrossOriginProtection) and carry the session's form token. The
// personal details of one exchange are shown only to focal points and
// admins, on an explicit request that is recorded in the audit trail.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"refbridge"
	"refbridge/profile"
	"refbridge/store"
)

// Prefix is where the console is mounted; every route starts with it.
const Prefix = "/console/"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/console.css
var stylesheet []byte

//go:embed messages/*.json
var messageFS embed.FS

// Store is what the console reads and changes in the store (*store.DB).
type Store interface {
	List(ctx context.Context, f store.Filter) ([]refbridge.Exchange, int, error)
	Counts(ctx context.Context, since time.Time) (map[refbridge.Flow]map[refbridge.ExchangeState]int, error)
	Activity(ctx context.Context, since time.Time) ([]store.HourActivity, error)
	Get(ctx context.Context, id string) (refbridge.Exchange, error)
	AuditEvents(ctx context.Context, f store.AuditFilter) ([]refbridge.AuditEvent, int, error)
	AppendAudit(ctx context.Context, ev refbridge.AuditEvent) error
	Retry(ctx context.Context, id, actor, reason string) (refbridge.Exchange, error)
	Discard(ctx context.Context, id, actor, reason string) (refbridge.Exchange, error)

	Authenticate(ctx context.Context, name, password string) (refbridge.Account, error)
	CreateSession(ctx context.Context, name string, ttl time.Duration) (string, refbridge.Session, error)
	Session(ctx context.Context, token string) (refbridge.Session, error)
	DeleteSession(ctx context.Context, token string) error
	SetUserLanguage(ctx context.Context, name, language string) error
	Users(ctx context.Context) ([]refbridge.Account, error)
	AddUser(ctx context.Context, name string, role refbridge.Role, language, password string) error
	SetUserDisabled(ctx context.Context, name string, disabled bool) error
}

// Config sets up a Console.
type Config struct {
	Store Store
	// Profile is the running country profile, for the profile page; nil
	// shows none.
	Profile *profile.Profile
	// Circuits reports each peer's circuit state (engine.CircuitStates);
	// nil shows none.
	Circuits func() map[string]string
	// LastPoll reports when a poll of Primero last succeeded; nil shows none.
	LastPoll func(ctx context.Context) (time.Time, error)
	// QueueDepth reports the work queue's jobs by state; nil shows none.
	QueueDepth func(ctx context.Context) (map[string]int, error)
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives account names, ids and codes only.
	Logger *slog.Logger
	// SessionTTL is how long a login lasts; default 8 hours (a working day).
	SessionTTL time.Duration
	// InsecureCookies drops the Secure attribute, for a console reached over
	// plain HTTP on a host other than localhost; never in production.
	InsecureCookies bool
	// LoginEvery and LoginBurst limit login attempts per client address and
	// per account name; default one every 10 seconds after a burst of 5.
	LoginEvery time.Duration
	LoginBurst int
}

// Console serves the operator console.
type Console struct {
	cfg     Config
	store   Store
	now     func() time.Time
	log     *slog.Logger
	pages   map[string]*pageTemplate
	locales map[string]*locale
	logins  *limiter
	handler http.Handler

	onceMu sync.Mutex
	once   map[string]oneTime // one-time login tokens (demo)
}

type oneTime struct {
	name    string
	expires time.Time
}

// New checks cfg, parses the templates and catalogs and returns a console.
func New(cfg Config) (*Console, error) {
	if cfg.Store == nil {
		return nil, errors.New("console: a store is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.LoginEvery <= 0 {
		cfg.LoginEvery = 10 * time.Second
	}
	if cfg.LoginBurst <= 0 {
		cfg.LoginBurst = 5
	}
	locales, err := loadLocales()
	if err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{
		cfg: cfg, store: cfg.Store, now: cfg.Now, log: cfg.Logger, pages: pages, locales: locales,
		logins: newLimiter(rate.Every(cfg.LoginEvery), cfg.LoginBurst, cfg.Now),
		once:   map[string]oneTime{},
	}
	c.handler = c.routes()
	return c, nil
}

// Handler returns the console's handler; mount it at Prefix.
func (c *Console) Handler() http.Handler { return c.handler }

// OneTimeLogin returns a path that logs the named account in once, within
// ten minutes (the demo prints it, so nobody types a password there). The
// token lives in this process only.
func (c *Console) OneTimeLogin(name string) (string, error) {
	token, err := randomToken()
	if err != nil {
		return "", err
	}
	c.onceMu.Lock()
	defer c.onceMu.Unlock()
	c.once[tokenKey(token)] = oneTime{name: name, expires: c.now().Add(10 * time.Minute)}
	return fmt.Sprintf("%slogin/once/%s", Prefix, token), nil
}

// takeOneTime consumes a one-time token and returns its account name.
func (c *Console) takeOneTime(token string) (string, bool) {
	c.onceMu.Lock()
	defer c.onceMu.Unlock()
	k := tokenKey(token)
	ot, ok := c.once[k]
	delete(c.once, k)
	if !ok || !c.now().Before(ot.expires) {
		return "", false
	}
	return ot.name, true
}
