package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"refbridge"
)

// formRoutes are the console's form handlers, as the fuzzer picks them.
var formRoutes = []string{
	"/console/login",
	"/console/logout",
	"/console/language",
	"/console/exchanges/{held}/retry",
	"/console/exchanges/{dead1}/retry",
	"/console/exchanges/{dead2}/discard",
	"/console/exchanges/{done}/personal",
	"/console/users",
	"/console/users/focalpoint/disable",
}

// FuzzConsoleForms posts arbitrary form bodies to every form handler, as an
// admin with a live session (the body may carry its own form_token, or
// none), or as nobody. Whatever the body: no 5xx, the child's name shows on
// no page but the personal-details view nor in any log line, a refused form
// changes no exchange, and the audit chain still verifies.
func FuzzConsoleForms(f *testing.F) {
	f.Add(uint8(0), true, "name=admin&password=long+enough+password")
	f.Add(uint8(0), false, "name=%00%ff&password=")
	f.Add(uint8(2), true, "language=ar")
	f.Add(uint8(2), true, "language=../../etc/passwd")
	f.Add(uint8(3), true, "reason=operator_fixed")
	f.Add(uint8(4), true, "reason=Testchild+Fixturename")
	f.Add(uint8(5), true, "reason=duplicate&form_token=forged")
	f.Add(uint8(6), true, "")
	f.Add(uint8(7), true, "name=fp.three&role=auditor&language=am&password=a+first+password")
	f.Add(uint8(7), true, "name=Testchild+Fixturename&role=admin&password=a+first+password")
	f.Add(uint8(8), false, "a=%zz&&&=")
	fx := newFixture(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, route uint8, admin bool, body string) {
		path := formRoutes[int(route)%len(formRoutes)]
		for name, id := range fx.ids {
			path = strings.ReplaceAll(path, "{"+name+"}", id)
		}
		if admin && !strings.Contains(body, "form_token") {
			body += "&form_token=" + formToken(fx.tokens[refbridge.RoleAdmin])
		}
		before := fx.states(t)
		req := httptest.NewRequest(http.MethodPost, "http://console.test"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if admin {
			req.AddCookie(&http.Cookie{Name: cookieName, Value: fx.tokens[refbridge.RoleAdmin]})
		}
		rec := httptest.NewRecorder()
		fx.handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s: status %d", path, rec.Code)
		}
		if !strings.HasSuffix(path, "/personal") && strings.Contains(rec.Body.String(), childName) {
			t.Fatalf("POST %s showed the child's name", path)
		}
		if strings.Contains(fx.logs.String(), childName) {
			t.Fatalf("POST %s logged the child's name", path)
		}
		if rec.Code != http.StatusSeeOther {
			if after := fx.states(t); after != before {
				t.Fatalf("POST %s refused with %d changed exchanges: %s → %s", path, rec.Code, before, after)
			}
		}
		if _, err := fx.db.VerifyAudit(ctx); err != nil {
			t.Fatalf("audit chain broken after POST %s: %v", path, err)
		}
	})
}
