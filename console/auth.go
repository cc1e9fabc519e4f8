package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"refbridge"
)

// cookieName names the session cookie. It is scoped to Prefix.
const cookieName = "refbridge_session"

// contentSecurityPolicy allows nothing but this origin's own stylesheet and
// images, no script at all, and no framing (clickjacking).
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// formToken is the anti-forgery token every form of a session carries: a
// MAC of the session token, so it needs no storage and dies with the session.
// It backs up http.CrossOriginProtection for browsers that send neither
// Sec-Fetch-Site nor Origin.
func formToken(session string) string {
	m := hmac.New(sha256.New, []byte(session))
	m.Write([]byte("refbridge/console/form/v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// limiter limits login attempts per key (client address, account name).
type limiter struct {
	mu    sync.Mutex
	every rate.Limit
	burst int
	now   func() time.Time
	keys  map[string]*rate.Limiter
}

// maxLimiterKeys bounds the limiter's memory; past it the table is reset,
// which at worst gives an attacker cycling addresses a fresh burst.
const maxLimiterKeys = 10000

func newLimiter(every rate.Limit, burst int, now func() time.Time) *limiter {
	return &limiter{every: every, burst: burst, now: now, keys: map[string]*rate.Limiter{}}
}

// allow spends one attempt of every key; all must have one left.
func (l *limiter) allow(keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keys) > maxLimiterKeys {
		l.keys = map[string]*rate.Limiter{}
	}
	ok := true
	for _, k := range keys {
		lim := l.keys[k]
		if lim == nil {
			lim = rate.NewLimiter(l.every, l.burst)
			l.keys[k] = lim
		}
		if !lim.AllowN(l.now(), 1) {
			ok = false
		}
	}
	return ok
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// viewer is the logged-in account of a request.
type viewer struct {
	account refbridge.Account
	token   string
	formTok string // formToken(token)
}

// Name is the account's name (for the page header).
func (v *viewer) Name() string { return v.account.Name }

// Role is the account's role.
func (v *viewer) Role() refbridge.Role { return v.account.Role }

// Form is the anti-forgery token the page's forms carry.
func (v *viewer) Form() string { return v.formTok }

type viewerKey struct{}

func viewerOf(ctx context.Context) *viewer {
	v, _ := ctx.Value(viewerKey{}).(*viewer)
	return v
}

func (v *viewer) can(roles ...refbridge.Role) bool {
	return v != nil && slices.Contains(roles, v.account.Role)
}

// Who may open what. Auditors read the audit trail and the overview's
// numbers; nothing that names an exchange's content.
func everyone() []refbridge.Role {
	return []refbridge.Role{refbridge.RoleAdmin, refbridge.RoleFocalPoint, refbridge.RoleAuditor}
}
func operators() []refbridge.Role {
	return []refbridge.Role{refbridge.RoleAdmin, refbridge.RoleFocalPoint}
}
func adminsOnly() []refbridge.Role { return []refbridge.Role{refbridge.RoleAdmin} }

// authed wraps h for the given roles: no session → the login page (GET) or
// 401; wrong role → 403; a POST must also carry the session's form token.
func (c *Console) authed(roles []refbridge.Role, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var sess refbridge.Session
		ck, err := r.Cookie(cookieName)
		if err != nil {
			err = refbridge.Errorf(refbridge.EUnauthorized, "no session cookie")
		} else {
			sess, err = c.store.Session(r.Context(), ck.Value)
		}
		if err != nil {
			if refbridge.ErrorCodeOf(err) != refbridge.EUnauthorized {
				c.fail(w, r, err)
				return
			}
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
				return
			}
			c.status(w, r, http.StatusUnauthorized)
			return
		}
		v := &viewer{account: sess.Account, token: ck.Value, formTok: formToken(ck.Value)}
		ctx := context.WithValue(r.Context(), viewerKey{}, v)
		r = r.WithContext(ctx)
		if !v.can(roles...) {
			c.status(w, r, http.StatusForbidden)
			return
		}
		if r.Method == http.MethodPost && !hmac.Equal([]byte(r.PostFormValue("form_token")), []byte(v.formTok)) {
			c.status(w, r, http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

func (c *Console) setSession(w http.ResponseWriter, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: token, Path: Prefix, Expires: expires,
		Secure: !c.cfg.InsecureCookies, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

func (c *Console) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1,
		Secure: !c.cfg.InsecureCookies, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", pageData{Title: "login"})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	name, password := r.PostFormValue("name"), r.PostFormValue("password")
	if !c.logins.allow("addr:"+clientAddr(r), "name:"+name) {
		c.log.Warn("console login rate-limited", "addr", clientAddr(r))
		w.Header().Set("Retry-After", "10")
		c.render(w, r, http.StatusTooManyRequests, "login", pageData{Title: "login", Flash: "login_rate_limited"})
		return
	}
	a, err := c.store.Authenticate(r.Context(), name, password)
	if refbridge.ErrorCodeOf(err) == refbridge.EUnauthorized {
		c.log.Info("console login refused", "addr", clientAddr(r))
		c.render(w, r, http.StatusUnauthorized, "login", pageData{Title: "login", Flash: "login_failed"})
		return
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.startSession(w, r, a.Name)
}

func (c *Console) startSession(w http.ResponseWriter, r *http.Request, name string) {
	token, sess, err := c.store.CreateSession(r.Context(), name, c.cfg.SessionTTL)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.log.Info("console login", "account", name)
	c.setSession(w, token, sess.ExpiresAt)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (c *Console) loginOnce(w http.ResponseWriter, r *http.Request) {
	name, ok := c.takeOneTime(r.PathValue("token"))
	if !ok {
		c.render(w, r, http.StatusUnauthorized, "login", pageData{Title: "login", Flash: "link_used"})
		return
	}
	c.startSession(w, r, name)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r.Context())
	if err := c.store.DeleteSession(r.Context(), v.token); err != nil {
		c.fail(w, r, err)
		return
	}
	c.clearSession(w)
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// setLanguage saves the viewer's interface language.
func (c *Console) setLanguage(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r.Context())
	if err := c.store.SetUserLanguage(r.Context(), v.account.Name, r.PostFormValue("language")); err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// secure sets the headers every console response carries.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer") // one-time links carry a token
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		if r.URL.Path != Prefix+"static/console.css" {
			hd.Set("Cache-Control", "no-store") // pages may hold personal data
		}
		h.ServeHTTP(w, r)
	})
}

// routes is the console's route table.
func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	p := Prefix
	mux.HandleFunc("GET "+p+"static/console.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(stylesheet)
	})
	mux.HandleFunc("GET "+p+"login", c.loginPage)
	mux.HandleFunc("POST "+p+"login", c.login)
	mux.HandleFunc("GET "+p+"login/once/{token}", c.loginOnce)
	mux.HandleFunc("POST "+p+"logout", c.authed(everyone(), c.logout))
	mux.HandleFunc("POST "+p+"language", c.authed(everyone(), c.setLanguage))

	mux.HandleFunc("GET "+p+"{$}", c.authed(everyone(), c.overview))
	mux.HandleFunc("GET "+p+"chart.svg", c.authed(everyone(), c.chart))
	mux.HandleFunc("GET "+p+"exchanges", c.authed(operators(), c.exchanges))
	mux.HandleFunc("GET "+p+"exchanges/{id}", c.authed(operators(), c.exchange))
	mux.HandleFunc("POST "+p+"exchanges/{id}/personal", c.authed(operators(), c.personal))
	mux.HandleFunc("POST "+p+"exchanges/{id}/retry", c.authed(operators(), c.retry))
	mux.HandleFunc("POST "+p+"exchanges/{id}/discard", c.authed(operators(), c.discard))
	mux.HandleFunc("GET "+p+"held", c.authed(operators(), c.held))
	mux.HandleFunc("GET "+p+"dead", c.authed(operators(), c.dead))
	mux.HandleFunc("GET "+p+"profile", c.authed(operators(), c.profilePage))
	mux.HandleFunc("GET "+p+"audit", c.authed(everyone(), c.audit))
	mux.HandleFunc("GET "+p+"audit/export", c.authed(everyone(), c.auditExport))
	mux.HandleFunc("GET "+p+"users", c.authed(adminsOnly(), c.users))
	mux.HandleFunc("POST "+p+"users", c.authed(adminsOnly(), c.addUser))
	mux.HandleFunc("POST "+p+"users/{name}/disable", c.authed(adminsOnly(), c.disableUser))
	mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { c.status(w, r, http.StatusNotFound) })

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.log.Warn("console: cross-origin request refused", "method", r.Method, "path", r.URL.Path)
		c.status(w, r, http.StatusForbidden)
	}))
	return secure(cop.Handler(mux))
}
