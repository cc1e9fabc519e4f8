package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"refbridge"
)

func testAccounts(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	db := s.db
	if err := db.AddUser(ctx, "fp.gambella", refbridge.RoleFocalPoint, "fr", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name, user, lang, password string
		role                       refbridge.Role
		code                       refbridge.ErrorCode
	}{
		{"Taken", "fp.gambella", "en", "another long one", refbridge.RoleAuditor, refbridge.EConflict},
		{"BadName", "Fatuma Ali", "en", "another long one", refbridge.RoleAuditor, refbridge.EInvalid},
		{"BadRole", "x", "en", "another long one", "root", refbridge.EInvalid},
		{"BadLanguage", "x", "de", "another long one", refbridge.RoleAuditor, refbridge.EInvalid},
		{"ShortPassword", "x", "en", "short", refbridge.RoleAuditor, refbridge.EInvalid},
		{"LongPassword", "x", "en", strings.Repeat("p", 300), refbridge.RoleAuditor, refbridge.EInvalid},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, db.AddUser(ctx, tc.user, tc.role, tc.lang, tc.password), tc.code)
		})
	}

	a, err := db.User(ctx, "fp.gambella")
	if err != nil {
		t.Fatal(err)
	}
	if a.Role != refbridge.RoleFocalPoint || a.Language != "fr" || a.Disabled {
		t.Fatalf("account = %+v", a)
	}
	// The hash is argon2id with its parameters and a salt, never the password.
	if !strings.HasPrefix(a.PasswordHash, "$argon2id$v=19$m=") || strings.Contains(a.PasswordHash, "horse") {
		t.Fatalf("password hash = %q", a.PasswordHash)
	}
	if err := db.AddUser(ctx, "fp.two", refbridge.RoleFocalPoint, "", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	b, _ := db.User(ctx, "fp.two")
	if b.PasswordHash == a.PasswordHash || b.Language != "en" {
		t.Fatalf("same password, same hash (no salt?) or language not defaulted: %+v", b)
	}

	for _, tc := range []struct{ name, user, password string }{
		{"WrongPassword", "fp.gambella", "correct horse battery!"},
		{"UnknownUser", "nobody", "correct horse battery"},
		{"Empty", "fp.gambella", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.Authenticate(ctx, tc.user, tc.password)
			wantCode(t, err, refbridge.EUnauthorized)
		})
	}
	if got, err := db.Authenticate(ctx, "fp.gambella", "correct horse battery"); err != nil || got.Name != "fp.gambella" {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}

	// A new password replaces the old one; disabling refuses the right one.
	if err := db.SetPassword(ctx, "fp.gambella", "a new long passphrase"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, "fp.gambella", "correct horse battery"); refbridge.ErrorCodeOf(err) != refbridge.EUnauthorized {
		t.Fatalf("old password still works: %v", err)
	}
	if _, err := db.Authenticate(ctx, "fp.gambella", "a new long passphrase"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetUserDisabled(ctx, "fp.gambella", true); err != nil {
		t.Fatal(err)
	}
	_, err = db.Authenticate(ctx, "fp.gambella", "a new long passphrase")
	wantCode(t, err, refbridge.EUnauthorized)
	wantCode(t, db.SetPassword(ctx, "nobody", "a new long passphrase"), refbridge.ENotFound)
	wantCode(t, db.SetUserLanguage(ctx, "fp.two", "xx"), refbridge.EInvalid)
	if err := db.SetUserLanguage(ctx, "fp.two", "ar"); err != nil {
		t.Fatal(err)
	}
	users, err := db.Users(ctx)
	if err != nil || len(users) != 2 || users[0].Name != "fp.gambella" || users[1].Language != "ar" {
		t.Fatalf("Users = %+v, %v", users, err)
	}
}

func testSessions(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	db := s.db
	for _, u := range []string{"admin", "auditor"} {
		if err := db.AddUser(ctx, u, refbridge.RoleAdmin, "en", "long enough password"); err != nil {
			t.Fatal(err)
		}
	}
	token, sess, err := db.CreateSession(ctx, "admin", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(token) < 43 || sess.Account.Name != "admin" || !sess.ExpiresAt.Equal(s.clock.Now().Add(time.Hour)) {
		t.Fatalf("CreateSession = %q, %+v", token, sess)
	}
	// Only the token's hash is stored.
	var n int
	if err := db.SQL().QueryRowContext(ctx, db.Bind(`SELECT COUNT(*) FROM console_session WHERE token_hash = ?`), token).Scan(&n); err != nil || n != 0 {
		t.Fatalf("token stored in clear: %d, %v", n, err)
	}
	got, err := db.Session(ctx, token)
	if err != nil || got.Account.Name != "admin" || got.Account.Role != refbridge.RoleAdmin {
		t.Fatalf("Session = %+v, %v", got, err)
	}
	for _, tc := range []struct{ name, token string }{
		{"Unknown", token[:len(token)-1] + "x"},
		{"Empty", ""},
		{"Huge", strings.Repeat("a", 1000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.Session(ctx, tc.token)
			wantCode(t, err, refbridge.EUnauthorized)
		})
	}
	_, _, err = db.CreateSession(ctx, "nobody", time.Hour)
	wantCode(t, err, refbridge.EUnauthorized)

	// Expiry.
	s.clock.Add(time.Hour)
	_, err = db.Session(ctx, token)
	wantCode(t, err, refbridge.EUnauthorized)

	// Logout, and a disabled account's sessions end.
	t2, _, err := db.CreateSession(ctx, "admin", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t3, _, err := db.CreateSession(ctx, "auditor", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSession(ctx, t2); err != nil {
		t.Fatal(err)
	}
	_, err = db.Session(ctx, t2)
	wantCode(t, err, refbridge.EUnauthorized)
	if err := db.SetUserDisabled(ctx, "auditor", true); err != nil {
		t.Fatal(err)
	}
	_, err = db.Session(ctx, t3)
	wantCode(t, err, refbridge.EUnauthorized)
	_, _, err = db.CreateSession(ctx, "auditor", time.Hour)
	wantCode(t, err, refbridge.EUnauthorized)
}
