package primerotest

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
)

// Authentication as Primero ≤v2.10 does it (contract §1): HTTP Basic on every
// endpoint, or a bearer token from POST /api/v2/tokens valid for TokenTTL.

const (
	msgInvalidLogin    = "Invalid User name or password."
	msgUnauthenticated = "You need to sign in or sign up before continuing."
	msgLocked          = "Your account is locked."

	// Devise lockable: this many consecutive failures lock the account.
	lockAfterFailures = 6
	lockFor           = 30 * time.Minute
	// Rack::Attack "Login attempts": limit per user_name per fixed window.
	loginLimit  = 6
	loginPeriod = 60 // seconds
)

type token struct {
	user    string
	expires time.Time
}

type loginWindow struct {
	window int64
	n      int
}

func errDevise(msg string) *apiError {
	return &apiError{status: http.StatusUnauthorized, raw: map[string]string{"error": msg}}
}

// errJWT is the answer to a missing, revoked or expired bearer token: the
// error envelope, unlike Devise's own failures.
func errJWT() *apiError {
	return &apiError{status: http.StatusUnauthorized, message: "Unauthorized"}
}

// authed wraps a handler that needs an authenticated user.
func (s *Sim) authed(h func(http.ResponseWriter, *http.Request, *user)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		u, err := s.authenticate(r)
		s.mu.Unlock()
		if err != nil {
			writeErr(w, r, err)
			return
		}
		h(w, r, u)
	}
}

// authenticate checks the Authorization header. Callers hold s.mu.
func (s *Sim) authenticate(r *http.Request) (*user, *apiError) {
	auth := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(auth, "Bearer "):
		return s.bearerUser(strings.TrimSpace(strings.TrimPrefix(auth, "Bearer ")))
	case strings.HasPrefix(auth, "Basic "):
		if s.opts.DisableBasicAuth {
			return nil, errDevise(msgUnauthenticated)
		}
		name, pw, ok := r.BasicAuth()
		if !ok {
			return nil, errDevise(msgInvalidLogin)
		}
		return s.checkPassword(name, pw)
	default:
		return nil, errDevise(msgUnauthenticated)
	}
}

func (s *Sim) bearerUser(tok string) (*user, *apiError) {
	t := s.tokens[tok]
	if t == nil {
		return nil, errJWT()
	}
	if !s.now().Before(t.expires) {
		delete(s.tokens, tok)
		return nil, errJWT()
	}
	u := s.users[t.user]
	if u == nil || u.disabled() {
		return nil, errJWT()
	}
	return u, nil
}

// checkPassword applies Devise's database authentication with lockable.
// Callers hold s.mu.
func (s *Sim) checkPassword(name, pw string) (*user, *apiError) {
	u := s.users[name]
	if u == nil {
		return nil, errDevise(msgInvalidLogin)
	}
	now := s.now()
	if !u.lockedUntil.IsZero() {
		if now.Before(u.lockedUntil) {
			return nil, errDevise(msgLocked)
		}
		u.lockedUntil, u.failures = time.Time{}, 0
	}
	if pw != u.spec.Password {
		u.failures++
		if u.failures >= lockAfterFailures {
			u.lockedUntil, u.failures = now.Add(lockFor), 0
			return nil, errDevise(msgLocked)
		}
		return nil, errDevise(msgInvalidLogin)
	}
	if u.disabled() {
		return nil, errDevise(msgInvalidLogin)
	}
	u.failures = 0
	return u, nil
}

// throttleKey is Rack::Attack's discriminator: the user_name, lowercased,
// without whitespace.
func throttleKey(name string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToLower(r)
	}, name)
}

// throttled counts one login attempt and reports whether it is over the
// limit. Rack::Attack uses fixed windows aligned to the period. Callers hold s.mu.
func (s *Sim) throttled(name string) bool {
	key := throttleKey(name)
	if key == "" {
		return false
	}
	win := s.now().Unix() / loginPeriod
	lw := s.logins[key]
	if lw == nil || lw.window != win {
		lw = &loginWindow{window: win}
		s.logins[key] = lw
	}
	lw.n++
	return lw.n > loginLimit
}

func (s *Sim) issueToken(u *user) string {
	tok := fmt.Sprintf("%016x%016x%08x", s.rng.Uint64(), s.rng.Uint64(), s.rng.Uint32())
	s.tokens[tok] = &token{user: u.name(), expires: s.now().Add(s.opts.TokenTTL)}
	return tok
}

// handleLogin is POST /api/v2/tokens: a login with {"user":{...}}, or a
// refresh when only a valid bearer token is presented.
func (s *Sim) handleLogin(w http.ResponseWriter, r *http.Request) {
	body, aerr := readBody(r)
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	creds, _ := body["user"].(map[string]any)
	var u *user
	auth := r.Header.Get("Authorization")
	switch {
	case creds != nil:
		name := str(creds["user_name"])
		if s.throttled(name) {
			writeErr(w, r, &apiError{status: http.StatusTooManyRequests, text: "Retry later\n"})
			return
		}
		u, aerr = s.checkPassword(name, str(creds["password"]))
	case strings.HasPrefix(auth, "Bearer "):
		old := strings.TrimSpace(strings.TrimPrefix(auth, "Bearer "))
		if u, aerr = s.bearerUser(old); aerr == nil {
			// A refresh replaces the presented token.
			delete(s.tokens, old)
		}
	default:
		aerr = errDevise(msgInvalidLogin)
	}
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	tok := s.issueToken(u)
	w.Header().Set("Authorization", "Bearer "+tok)
	writeJSON(w, http.StatusOK, map[string]any{"id": u.spec.ID, "user_name": u.name(), "token": tok})
}

// handleLogout is DELETE /api/v2/tokens: it revokes the presented token and,
// like Devise's respond_to_on_destroy override, always answers 200 {}.
func (s *Sim) handleLogout(w http.ResponseWriter, r *http.Request) {
	if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "Bearer ") {
		s.mu.Lock()
		delete(s.tokens, strings.TrimSpace(strings.TrimPrefix(auth, "Bearer ")))
		s.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}
