package console

import (
	"context"
	"encoding/json"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"refbridge"
	"refbridge/store"
)

func TestCrossSitePostRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		hdr  map[string]string
	}{
		{"SecFetchSite", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
		{"OriginOnly", map[string]string{"Origin": "https://evil.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A valid session and form token: only the origin is wrong.
			res := f.do(t, refbridge.RoleFocalPoint, "POST", "/console/exchanges/"+f.ids["dead1"]+"/retry", url.Values{"reason": {"peer_fixed"}}, tc.hdr)
			if res.StatusCode != http.StatusForbidden {
				t.Fatalf("cross-site retry = %d, want 403", res.StatusCode)
			}
		})
	}
	ex, err := f.db.Get(context.Background(), f.ids["dead1"])
	if err != nil || ex.State != refbridge.StateDead {
		t.Fatalf("exchange moved by a refused request: %s %v", ex.State, err)
	}
	// Same origin passes.
	res := f.do(t, refbridge.RoleFocalPoint, "POST", "/console/exchanges/"+f.ids["dead1"]+"/retry", url.Values{"reason": {"peer_fixed"}},
		map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://console.test"})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("same-origin retry = %d, want 303", res.StatusCode)
	}
}

func TestFormTokenRequired(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tok := range []string{"", "forged"} {
		res := f.do(t, refbridge.RoleAdmin, "POST", "/console/exchanges/"+f.ids["dead2"]+"/discard",
			url.Values{"reason": {"duplicate"}, "form_token": {tok}}, nil)
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("discard with form token %q = %d, want 403", tok, res.StatusCode)
		}
	}
	// A reason outside the list is refused.
	res := f.do(t, refbridge.RoleAdmin, "POST", "/console/exchanges/"+f.ids["dead2"]+"/discard", url.Values{"reason": {"because"}}, nil)
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("discard with a free-text reason = %d, want 400", res.StatusCode)
	}
}

func TestPersonalDetailsAudited(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.ids["held"]
	page := readBody(t, f.do(t, refbridge.RoleFocalPoint, "GET", "/console/exchanges/"+id, nil, nil))
	if strings.Contains(page, childName) {
		t.Fatal("the exchange page shows personal data before it is asked for")
	}
	res := f.do(t, refbridge.RoleFocalPoint, "POST", "/console/exchanges/"+id+"/personal", nil, nil)
	body := readBody(t, res)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, childName) || !strings.Contains(body, "individuals[0].progres_dateofbirth") {
		t.Fatalf("personal view = %d without the values", res.StatusCode)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("personal page Cache-Control %q, want no-store", cc)
	}
	evs, _, err := f.db.AuditEvents(context.Background(), store.AuditFilter{ExchangeID: id})
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.Kind != refbridge.AuditViewed || last.Actor != "focalpoint" || !slices.Contains(last.Fields, "progres_givenname") {
		t.Fatalf("view not audited: %+v", last)
	}
	for _, e := range evs {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), "Testchild") {
			t.Fatal("a personal value reached the audit trail")
		}
	}
	// The auditor is refused, and nothing is recorded for the attempt.
	if res := f.do(t, refbridge.RoleAuditor, "POST", "/console/exchanges/"+id+"/personal", nil, nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("auditor personal view = %d, want 403", res.StatusCode)
	}
	if after, _, _ := f.db.AuditEvents(context.Background(), store.AuditFilter{ExchangeID: id}); len(after) != len(evs) {
		t.Fatal("the auditor's refused attempt changed the trail")
	}
}

func TestLoginLogoutAndRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	post := func(name, pw string) *http.Response {
		t.Helper()
		return f.do(t, "", "POST", "/console/login", url.Values{"name": {name}, "password": {pw}}, nil)
	}
	if res := post("admin", "wrong password!!"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password = %d", res.StatusCode)
	}
	res := post("admin", "long enough password")
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login = %d", res.StatusCode)
	}
	var ck *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == cookieName {
			ck = c
		}
	}
	if ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != Prefix || ck.Expires.IsZero() {
		t.Fatalf("session cookie = %+v", ck)
	}
	if _, err := f.db.Session(context.Background(), ck.Value); err != nil {
		t.Fatalf("session from login: %v", err)
	}
	// Burst 3: the fourth attempt from this address is refused unchecked.
	post("admin", "wrong password!!")
	if res := post("admin", "long enough password"); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("attempt past the limit = %d, want 429", res.StatusCode)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, path := range []string{"/console/login", "/console/", "/console/static/console.css"} {
		res := f.do(t, refbridge.RoleAdmin, "GET", path, nil, nil)
		h := res.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") && !strings.Contains(csp, "default-src 'none'") {
			t.Fatalf("%s CSP %q", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("%s headers %v", path, h)
		}
	}
	// No page carries a script.
	for _, path := range []string{"/console/login", "/console/", "/console/exchanges", "/console/dead", "/console/audit", "/console/profile"} {
		if body := readBody(t, f.do(t, refbridge.RoleAdmin, "GET", path, nil, nil)); strings.Contains(strings.ToLower(body), "<script") {
			t.Fatalf("%s has a script", path)
		}
	}
}

func TestOneTimeLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	link, err := f.console.OneTimeLogin("admin")
	if err != nil {
		t.Fatal(err)
	}
	if res := f.do(t, "", "GET", link, nil, nil); res.StatusCode != http.StatusSeeOther || len(res.Cookies()) == 0 {
		t.Fatalf("one-time link = %d", res.StatusCode)
	}
	if res := f.do(t, "", "GET", link, nil, nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("second use = %d, want 401", res.StatusCode)
	}
}

func TestLanguages(t *testing.T) {
	t.Parallel()
	// English and French are complete; Arabic and Amharic too (checked
	// the same way), each with its direction.
	keys := func(lang string) []string {
		b, err := fs.ReadFile(messageFS, "messages/"+lang+".json")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return slices.Sorted(maps.Keys(m))
	}
	en := keys("en")
	for _, lang := range []string{"fr", "ar", "am"} {
		if got := keys(lang); !slices.Equal(got, en) {
			t.Errorf("catalog %s keys differ from en", lang)
		}
	}
	f := newFixture(t)
	ctx := context.Background()
	for _, tc := range []struct{ lang, dir, word string }{
		{"fr", "ltr", "Vue d&#39;ensemble"}, {"ar", "rtl", "نظرة عامة"}, {"am", "ltr", "አጠቃላይ እይታ"},
	} {
		if err := f.db.SetUserLanguage(ctx, "admin", tc.lang); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/console/", "/console/exchanges/" + f.ids["dead1"], "/console/audit", "/console/dead"} {
			body := readBody(t, f.do(t, refbridge.RoleAdmin, "GET", path, nil, nil))
			if !strings.Contains(body, `dir="`+tc.dir+`"`) || !strings.Contains(body, `lang="`+tc.lang+`"`) || !strings.Contains(body, tc.word) {
				t.Fatalf("%s %s: not rendered in %s/%s", tc.lang, path, tc.lang, tc.dir)
			}
			for _, raw := range []string{">state_", ">flow_", ">kind_", ">role_", "(role_", ">why_"} {
				if strings.Contains(body, raw) {
					t.Fatalf("%s %s: untranslated key %q", tc.lang, path, raw)
				}
			}
		}
	}
}

func TestAdminManagesAccounts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	res := f.do(t, refbridge.RoleAdmin, "POST", "/console/users", url.Values{"name": {"fp.two"}, "role": {"focal_point"}, "language": {"am"},
		"password": {"a first password"}}, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("add = %d", res.StatusCode)
	}
	if a, err := f.db.Authenticate(ctx, "fp.two", "a first password"); err != nil || a.Role != refbridge.RoleFocalPoint || a.Language != "am" {
		t.Fatalf("added account = %+v, %v", a, err)
	}
	for _, form := range []url.Values{
		{"name": {"fp.two"}, "role": {"auditor"}, "password": {"a first password"}},     // taken
		{"name": {"Fatuma Ali"}, "role": {"auditor"}, "password": {"a first password"}}, // not a handle
		{"name": {"x"}, "role": {"root"}, "password": {"a first password"}},
		{"name": {"y"}, "role": {"auditor"}, "password": {"short"}},
	} {
		if res := f.do(t, refbridge.RoleAdmin, "POST", "/console/users", form, nil); res.StatusCode != http.StatusBadRequest {
			t.Fatalf("add %v = %d, want 400", form, res.StatusCode)
		}
	}
	if res := f.do(t, refbridge.RoleAdmin, "POST", "/console/users/admin/disable", nil, nil); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("self-disable = %d, want 400", res.StatusCode)
	}
	if res := f.do(t, refbridge.RoleAdmin, "POST", "/console/users/fp.two/disable", nil, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable = %d", res.StatusCode)
	}
	if _, err := f.db.Authenticate(ctx, "fp.two", "a first password"); refbridge.ErrorCodeOf(err) != refbridge.EUnauthorized {
		t.Fatalf("disabled account logs in: %v", err)
	}
	evs, _, err := f.db.AuditEvents(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		if e.Kind == refbridge.AuditConfigChanged && e.Actor == "admin" {
			got = append(got, e.Reason+":"+e.Outcome)
		}
	}
	if !slices.Equal(got, []string{"user_added_focal_point:fp.two", "user_disabled:fp.two"}) {
		t.Fatalf("account changes audited as %v", got)
	}
}
