package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"refbridge"
	"refbridge/store"
)

func TestUserCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys, keyText, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, keyText)
	runIn := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		var out, errs strings.Builder
		code := run(context.Background(), args, strings.NewReader(stdin), &out, &errs)
		return code, out.String(), errs.String()
	}
	steps := []struct {
		name, stdin string
		args        []string
		code        int
	}{
		{"Add", "first admin password\n", []string{"user", "add", "--config", cfg, "root", "--role", "admin", "--language", "fr"}, 0},
		{"AddTaken", "first admin password\n", []string{"user", "add", "--config", cfg, "root"}, 1},
		{"AddNoPassword", "", []string{"user", "add", "--config", cfg, "fp"}, 1},
		{"AddBadRole", "long enough password\n", []string{"user", "add", "--config", cfg, "fp", "--role", "root"}, 1},
		{"AddNoName", "x\n", []string{"user", "add", "--config", cfg}, exitUsage},
		{"Unknown", "", []string{"user", "remove", "--config", cfg, "root"}, exitUsage},
		{"Passwd", "second admin password\r\n", []string{"user", "passwd", "--config", cfg, "root"}, 0},
		{"PasswdUnknown", "second admin password\n", []string{"user", "passwd", "--config", cfg, "nobody"}, 1},
		{"AddAuditor", "auditor password 1\n", []string{"user", "add", "--config", cfg, "aud", "--role", "auditor"}, 0},
		{"Disable", "", []string{"user", "disable", "--config", cfg, "aud"}, 0},
	}
	for _, st := range steps { // in order: each step sees the previous ones
		code, out, errs := runIn(st.stdin, st.args...)
		if code != st.code {
			t.Fatalf("%s: exit %d, want %d (%q %q)", st.name, code, st.code, out, errs)
		}
		if strings.Contains(out+errs, "password 1") || strings.Contains(out+errs, "admin password") {
			t.Fatalf("%s: a password was printed: %q %q", st.name, out, errs)
		}
	}
	db, err := store.Open(context.Background(), store.Config{Path: filepath.Join(dir, "refbridge.db"), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, err := db.Authenticate(context.Background(), "root", "second admin password")
	if err != nil || a.Role != refbridge.RoleAdmin || a.Language != "fr" {
		t.Fatalf("root = %+v, %v", a, err)
	}
	if _, err := db.Authenticate(context.Background(), "aud", "auditor password 1"); refbridge.ErrorCodeOf(err) != refbridge.EUnauthorized {
		t.Fatalf("disabled auditor logs in: %v", err)
	}
}
