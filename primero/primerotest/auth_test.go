package primerotest

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const wwwAuthenticate = `Bearer realm="Primero" charset="UTF8"`

func login(t testing.TB, s *Sim, user, pw string) response {
	t.Helper()
	return request(t, s, http.MethodPost, "/api/v2/tokens", "",
		map[string]any{"user": map[string]any{"user_name": user, "password": pw}})
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	basic := func(user, pw string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, pw) }
	}
	tests := []struct {
		name      string
		auth      func(*http.Request)
		want      int
		wantError string // Devise {"error": ...}; "" = error envelope
	}{
		{"valid", basic(uBridge, password(uBridge)), http.StatusOK, ""},
		{"wrong password", basic(uBridge, "nope"), http.StatusUnauthorized, msgInvalidLogin},
		{"unknown user", basic("nobody", "x"), http.StatusUnauthorized, msgInvalidLogin},
		{"disabled user", basic(uDisabled, password(uDisabled)), http.StatusUnauthorized, msgInvalidLogin},
		{"no credentials", func(*http.Request) {}, http.StatusUnauthorized, msgUnauthenticated},
		{"unknown bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc") }, http.StatusUnauthorized, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v2/cases", nil)
			tc.auth(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want != http.StatusUnauthorized {
				return
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != wwwAuthenticate {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			r := response{status: resp.StatusCode}
			r.body = readAll(t, resp)
			if tc.wantError != "" {
				if got := r.obj(t)["error"]; got != tc.wantError {
					t.Errorf("error = %v, want %q", got, tc.wantError)
				}
				return
			}
			if e := r.firstError(t); e["status"] != float64(401) {
				t.Errorf("envelope %v", e)
			}
		})
	}
}

func TestTokenLifecycle(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := newSim(t, Options{Now: clock.Now, Seed: 1})

	r := login(t, s, uBridge, password(uBridge))
	mustStatus(t, r, http.StatusOK)
	body := r.obj(t)
	tok, _ := body["token"].(string)
	if tok == "" || body["user_name"] != uBridge || body["id"] == nil {
		t.Fatalf("login body %s", r.body)
	}
	if got := r.header.Get("Authorization"); got != "Bearer "+tok {
		t.Fatalf("Authorization header %q, want the body's token", got)
	}
	bearer := "Bearer " + tok
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/cases", bearer, nil), http.StatusOK)

	clock.Advance(59 * time.Minute)
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/cases", bearer, nil), http.StatusOK)

	clock.Advance(time.Minute)
	r = request(t, s, http.MethodGet, "/api/v2/cases", bearer, nil)
	mustStatus(t, r, http.StatusUnauthorized)
	if r.header.Get("WWW-Authenticate") != wwwAuthenticate {
		t.Errorf("expired token: WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
	}
	if e := r.firstError(t); e["status"] != float64(401) || e["resource"] != "/api/v2/cases" {
		t.Errorf("expired token: envelope %v", e)
	}

	// Refresh: POST /tokens with a valid bearer replaces it.
	r = login(t, s, uBridge, password(uBridge))
	mustStatus(t, r, http.StatusOK)
	old := "Bearer " + r.obj(t)["token"].(string)
	r = request(t, s, http.MethodPost, "/api/v2/tokens", old, nil)
	mustStatus(t, r, http.StatusOK)
	fresh := "Bearer " + r.obj(t)["token"].(string)
	if fresh == old {
		t.Fatal("refresh returned the same token")
	}
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/cases", old, nil), http.StatusUnauthorized)
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/cases", fresh, nil), http.StatusOK)

	// Logout revokes and answers 200 {}.
	r = request(t, s, http.MethodDelete, "/api/v2/tokens", fresh, nil)
	mustStatus(t, r, http.StatusOK)
	if string(r.body) != "{}" {
		t.Errorf("logout body %q", r.body)
	}
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/cases", fresh, nil), http.StatusUnauthorized)
}

func TestTokenTTLOption(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := newSim(t, Options{Now: clock.Now, TokenTTL: 5 * time.Minute})
	bearer := "Bearer " + login(t, s, uBridge, password(uBridge)).obj(t)["token"].(string)
	clock.Advance(4 * time.Minute)
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/users", bearer, nil), http.StatusOK)
	clock.Advance(time.Minute)
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/users", bearer, nil), http.StatusUnauthorized)
}

func TestLoginWrongPassword(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	r := login(t, s, uBridge, "wrong")
	mustStatus(t, r, http.StatusUnauthorized)
	if r.obj(t)["error"] != msgInvalidLogin || r.header.Get("WWW-Authenticate") != wwwAuthenticate {
		t.Errorf("body %s header %v", r.body, r.header)
	}
}

func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	clock := newFakeClock() // 10:00:00, the start of a window
	s := newSim(t, Options{Now: clock.Now})
	for i := range loginLimit {
		// Spelling variants share Rack::Attack's key (downcased, no spaces).
		name := uBridge
		if i%2 == 1 {
			name = " BRIDGE"
		}
		r := login(t, s, name, password(uBridge))
		if r.status == http.StatusTooManyRequests {
			t.Fatalf("attempt %d throttled", i+1)
		}
	}
	r := login(t, s, uBridge, password(uBridge))
	mustStatus(t, r, http.StatusTooManyRequests)
	if string(r.body) != "Retry later\n" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("429 body %q content-type %q", r.body, r.header.Get("Content-Type"))
	}
	// Other users are not affected; Basic auth is not throttled.
	mustStatus(t, login(t, s, uCW1, password(uCW1)), http.StatusOK)
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/cases", uBridge, nil), http.StatusOK)

	clock.Advance(60 * time.Second) // next fixed window
	mustStatus(t, login(t, s, uBridge, password(uBridge)), http.StatusOK)
}

func TestLockout(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := newSim(t, Options{Now: clock.Now})
	bad := func() response {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v2/cases", nil)
		req.SetBasicAuth(uCW1, "wrong")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return response{status: resp.StatusCode, body: readAll(t, resp)}
	}
	for i := 1; i < lockAfterFailures; i++ {
		if msg := bad().obj(t)["error"]; msg != msgInvalidLogin {
			t.Fatalf("failure %d: %v", i, msg)
		}
	}
	if msg := bad().obj(t)["error"]; msg != msgLocked {
		t.Fatalf("failure %d: %v, want locked", lockAfterFailures, msg)
	}
	r := request(t, s, http.MethodGet, "/api/v2/cases", uCW1, nil)
	mustStatus(t, r, http.StatusUnauthorized)
	if r.obj(t)["error"] != msgLocked {
		t.Errorf("right password while locked: %s", r.body)
	}
	clock.Advance(lockFor)
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/cases", uCW1, nil), http.StatusOK)
}

func TestDisableBasicAuth(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{DisableBasicAuth: true})
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/cases", uBridge, nil), http.StatusUnauthorized)
	bearer := "Bearer " + login(t, s, uBridge, password(uBridge)).obj(t)["token"].(string)
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/cases", bearer, nil), http.StatusOK)
}

func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
