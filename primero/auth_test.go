package primero_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"refbridge"
	"refbridge/primero"
)

// Token-login edge cases the simulator does not produce: a server that
// issues no token (Primero ≥ v2.11), one that sends it only in the
// Authorization header, and one that refuses every token it issued.
func TestTokenLoginEdgeCases(t *testing.T) {
	t.Parallel()
	const caseID = "9e9e9e9e-0000-4000-8000-000000000001"
	tests := []struct {
		name       string
		login      func(w http.ResponseWriter)
		acceptTok  bool
		wantCode   refbridge.ErrorCode
		wantLogins int32
		wantCalls  int32
	}{
		{
			name:       "token in body",
			login:      func(w http.ResponseWriter) { w.Write([]byte(`{"id":1,"user_name":"u","token":"tok"}`)) },
			acceptTok:  true,
			wantLogins: 1, wantCalls: 1,
		},
		{
			name: "token only in header",
			login: func(w http.ResponseWriter) {
				w.Header().Set("Authorization", "Bearer tok")
				w.Write([]byte(`{"id":1,"user_name":"u"}`))
			},
			acceptTok:  true,
			wantLogins: 1, wantCalls: 1,
		},
		{
			name:       "v2.11 session login issues no token",
			login:      func(w http.ResponseWriter) { w.Write([]byte(`{"id":1,"user_name":"u","group_permission":"all"}`)) },
			wantCode:   refbridge.EUnauthorized,
			wantLogins: 1, wantCalls: 0,
		},
		{
			name:       "every token refused: one re-login, one repeat, then unauthorized",
			login:      func(w http.ResponseWriter) { w.Write([]byte(`{"id":1,"user_name":"u","token":"tok"}`)) },
			acceptTok:  false,
			wantCode:   refbridge.EUnauthorized,
			wantLogins: 2, wantCalls: 2,
		},
		{
			name: "credentials refused",
			login: func(w http.ResponseWriter) {
				w.WriteHeader(http.StatusUnauthorized)
				w.Write([]byte(`{"error":"Invalid User name or password."}`))
			},
			wantCode:   refbridge.EUnauthorized,
			wantLogins: 1, wantCalls: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logins, calls atomic.Int32
			mux := http.NewServeMux()
			mux.HandleFunc("POST /api/v2/tokens", func(w http.ResponseWriter, r *http.Request) {
				logins.Add(1)
				tt.login(w)
			})
			mux.HandleFunc("GET /api/v2/cases/{id}", func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				if !tt.acceptTok || r.Header.Get("Authorization") != "Bearer tok" {
					w.WriteHeader(http.StatusUnauthorized)
					w.Write([]byte(`{"errors":[{"status":401,"resource":"/api/v2/cases","message":"Unauthorized"}]}`))
					return
				}
				w.Write([]byte(`{"data":{"id":"` + caseID + `"}}`))
			})
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			c, err := primero.New(primero.Config{BaseURL: srv.URL, UserName: "u", Password: "pw-secret", Auth: primero.AuthToken, Sleep: noSleep})
			if err != nil {
				t.Fatal(err)
			}
			cs, err := c.GetCase(t.Context(), caseID)
			if code := refbridge.ErrorCodeOf(err); code != tt.wantCode {
				t.Fatalf("got %v, want %q", err, tt.wantCode)
			}
			if tt.wantCode == "" && cs.ID != caseID {
				t.Errorf("case id = %q", cs.ID)
			}
			if err != nil && strings.Contains(err.Error(), "pw-secret") {
				t.Errorf("error quotes the password: %v", err)
			}
			if n := logins.Load(); n != tt.wantLogins {
				t.Errorf("logins = %d, want %d", n, tt.wantLogins)
			}
			if n := calls.Load(); n != tt.wantCalls {
				t.Errorf("calls = %d, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestSetCredentialsValidates(t *testing.T) {
	t.Parallel()
	c, err := primero.New(primero.Config{BaseURL: "http://127.0.0.1:1", UserName: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{{"", "p"}, {"u", ""}} {
		if err := c.SetCredentials(pair[0], pair[1]); refbridge.ErrorCodeOf(err) != refbridge.EInvalid {
			t.Errorf("SetCredentials(%q, %q) = %v, want invalid", pair[0], pair[1], err)
		}
	}
}
