package console

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"refbridge"
	"refbridge/profile"
	"refbridge/store"
)

// fixture is a console over a real SQLite store holding one exchange in
// each interesting state and one account per role with a live session.
type fixture struct {
	db      *store.DB
	console *Console
	handler http.Handler
	// tokens are session tokens by role.
	tokens map[refbridge.Role]string
	// ids by name: "held", "done", "dead1", "dead2".
	ids map[string]string
	// logs holds what the console logged.
	logs *logSink
}

// childName is synthetic personal data the payload carries; it must only
// ever appear on the personal-details page.
const childName = "Testchild Fixturename"

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	keys, _, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, store.Config{Path: filepath.Join(t.TempDir(), "refbridge.db"), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{db: db, tokens: map[refbridge.Role]string{}, ids: map[string]string{}, logs: newLogSink(t)}
	names := []string{"held", "done", "dead1", "dead2"}
	var items []refbridge.Inbound
	for i := range names {
		items = append(items, refbridge.Inbound{Flow: refbridge.FlowIntervention, Key: "TST-24-PRTITV-000000" + string(rune('1'+i)), ContentHash: "h",
			Payload: []byte(`{"progres_givenname":"` + childName + `","individuals":[{"progres_dateofbirth":"2014-03-15"}]}`)})
	}
	got, err := db.Receive(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		f.ids[n] = got[i].ExchangeID
	}
	for _, s := range []struct {
		name string
		c    store.Change
	}{
		{"held", store.Change{To: refbridge.StateHeld, Reason: "consent_missing"}},
		{"done", store.Change{To: refbridge.StateDone}},
		{"dead1", store.Change{To: refbridge.StateMapped}},
		{"dead1", store.Change{To: refbridge.StateDead, Reason: "retry_budget_spent", LastError: refbridge.ETransient}},
		{"dead2", store.Change{To: refbridge.StateDead, Reason: "invalid", LastError: refbridge.EInvalid}},
	} {
		if _, err := db.Transition(ctx, f.ids[s.name], s.c); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range refbridge.Roles() {
		name := strings.ReplaceAll(string(r), "_", "")
		if err := db.AddUser(ctx, name, r, "en", "long enough password"); err != nil {
			t.Fatal(err)
		}
		tok, _, err := db.CreateSession(ctx, name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[r] = tok
	}
	p, err := profile.Load("gambella")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Store: db, Profile: p, Circuits: func() map[string]string { return map[string]string{"dtp": "open", "primero": "closed"} },
		LoginEvery: time.Hour, LoginBurst: 3, Logger: slog.New(slog.NewTextHandler(f.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f.console, f.handler = c, c.Handler()
	return f
}

// do sends one request as role ("" for nobody); POST forms get the
// session's form token unless form already sets one.
func (f *fixture) do(t *testing.T, role refbridge.Role, method, path string, form url.Values, hdr map[string]string) *http.Response {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		form = cloneForm(form)
		if _, ok := form["form_token"]; !ok && role != "" {
			form.Set("form_token", formToken(f.tokens[role]))
		}
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, "http://console.test"+path, body)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if role != "" {
		req.AddCookie(&http.Cookie{Name: cookieName, Value: f.tokens[role]})
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec.Result()
}

func readBody(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRoleRouteMatrix checks every route for every role (and for nobody):
// allowed, forbidden, or sent to log in. Each role gets its own store, so
// the retries and discards of one do not change what another sees.
func TestRoleRouteMatrix(t *testing.T) {
	t.Parallel()
	const (
		ok       = http.StatusOK
		redirect = http.StatusSeeOther
		denied   = http.StatusForbidden
		login    = http.StatusUnauthorized
	)
	type route struct {
		method, path string
		form         url.Values
	}
	reason := url.Values{"reason": {"peer_fixed"}}
	routes := func(f *fixture) map[string]route {
		return map[string]route{
			"overview":   {"GET", "/console/", nil},
			"chart":      {"GET", "/console/chart.svg", nil},
			"exchanges":  {"GET", "/console/exchanges?key=TST", nil},
			"exchange":   {"GET", "/console/exchanges/" + f.ids["held"], nil},
			"personal":   {"POST", "/console/exchanges/" + f.ids["held"] + "/personal", nil},
			"retry":      {"POST", "/console/exchanges/" + f.ids["dead1"] + "/retry", reason},
			"discard":    {"POST", "/console/exchanges/" + f.ids["dead2"] + "/discard", reason},
			"held":       {"GET", "/console/held", nil},
			"dead":       {"GET", "/console/dead", nil},
			"profile":    {"GET", "/console/profile", nil},
			"audit":      {"GET", "/console/audit", nil},
			"export_csv": {"GET", "/console/audit/export?format=csv", nil},
			"export_js":  {"GET", "/console/audit/export?format=json", nil},
			"users":      {"GET", "/console/users", nil},
			"add_user": {"POST", "/console/users", url.Values{"name": {"new.fp"}, "role": {"focal_point"}, "language": {"fr"},
				"password": {"a first password"}}},
			"disable_user": {"POST", "/console/users/auditor/disable", nil},
			"language":     {"POST", "/console/language", url.Values{"language": {"fr"}}},
			"logout":       {"POST", "/console/logout", nil},
		}
	}
	//                   admin     focal_point auditor  nobody
	want := map[string][4]int{
		"overview":     {ok, ok, ok, redirect},
		"chart":        {ok, ok, ok, redirect},
		"exchanges":    {ok, ok, denied, redirect},
		"exchange":     {ok, ok, denied, redirect},
		"personal":     {ok, ok, denied, login},
		"retry":        {redirect, redirect, denied, login},
		"discard":      {redirect, redirect, denied, login},
		"held":         {ok, ok, denied, redirect},
		"dead":         {ok, ok, denied, redirect},
		"profile":      {ok, ok, denied, redirect},
		"audit":        {ok, ok, ok, redirect},
		"export_csv":   {ok, ok, ok, redirect},
		"export_js":    {ok, ok, ok, redirect},
		"users":        {ok, denied, denied, redirect},
		"add_user":     {redirect, denied, denied, login},
		"disable_user": {redirect, denied, denied, login},
		"language":     {redirect, redirect, redirect, login},
		"logout":       {redirect, redirect, redirect, login},
	}
	for i, role := range []refbridge.Role{refbridge.RoleAdmin, refbridge.RoleFocalPoint, refbridge.RoleAuditor, ""} {
		t.Run(cmpOr(string(role), "nobody"), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			rs := routes(f)
			for name, r := range rs {
				if name == "logout" {
					continue // last: it ends the session the others use
				}
				t.Run(name, func(t *testing.T) {
					res := f.do(t, role, r.method, r.path, r.form, nil)
					body := readBody(t, res)
					if res.StatusCode != want[name][i] {
						t.Fatalf("%s %s as %q = %d, want %d", r.method, r.path, role, res.StatusCode, want[name][i])
					}
					if name != "personal" && strings.Contains(body, childName) {
						t.Fatalf("%s shows personal data", name)
					}
					if role == refbridge.RoleAuditor && strings.Contains(body, childName) {
						t.Fatal("an auditor saw personal data")
					}
				})
			}
			lo := rs["logout"]
			if res := f.do(t, role, lo.method, lo.path, lo.form, nil); res.StatusCode != want["logout"][i] {
				t.Fatalf("logout as %q = %d", role, res.StatusCode)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func cloneForm(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// logSink keeps what the console logs, and shows it in a test's output
// (not a fuzz target's: there only the kept text is checked).
type logSink struct {
	t   *testing.T
	mu  sync.Mutex
	buf strings.Builder
}

func newLogSink(tb testing.TB) *logSink {
	t, _ := tb.(*testing.T)
	return &logSink{t: t}
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if s.t != nil {
		s.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// states sums up what a form may change: each fixture exchange's state and
// reason, and the accounts.
func (f *fixture) states(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(f.ids)) {
		ex, err := f.db.Get(ctx, f.ids[name])
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s=%s/%s ", name, ex.State, ex.Reason)
	}
	users, err := f.db.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		fmt.Fprintf(&b, "%s:%s:%t ", u.Name, u.Role, u.Disabled)
	}
	return b.String()
}
