package store

import (
	"strings"
	"testing"
)

func TestBindDollar(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, in, want string
	}{
		{"None", `SELECT 1`, `SELECT 1`},
		{"Several", `UPDATE t SET a = ?, b = ? WHERE id = ?`, `UPDATE t SET a = $1, b = $2 WHERE id = $3`},
		{"InLiteral", `SELECT '?' || ? FROM t WHERE x = 'a''?b' AND y = ?`, `SELECT '?' || $1 FROM t WHERE x = 'a''?b' AND y = $2`},
		{"InIdentifier", `SELECT "we?rd" FROM t WHERE a = ?`, `SELECT "we?rd" FROM t WHERE a = $1`},
		{"InComment", "SELECT a -- why?\nFROM t WHERE a = ?", "SELECT a -- why?\nFROM t WHERE a = $1"},
		{"CommentAtEnd", `SELECT ? -- the end?`, `SELECT $1 -- the end?`},
		{"UnclosedLiteral", `SELECT ?, 'oops ?`, `SELECT $1, 'oops ?`},
		{"TenAndMore", strings.Repeat("?,", 10) + "?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := bindDollar(tt.in); got != tt.want {
				t.Fatalf("bindDollar(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestQueriesBindCompletely checks every statement of the PostgreSQL
// dialect lost its '?' placeholders (a '?' left over would be a syntax
// error found only at run time).
func TestQueriesBindCompletely(t *testing.T) {
	t.Parallel()

	q := newQueries(postgresDialect())
	for name, stmt := range map[string]string{
		"migrationApplied": q.migrationApplied, "migrationRecord": q.migrationRecord,
		"intakeFind": q.intakeFind, "intakeInsert": q.intakeInsert, "intakeUpdate": q.intakeUpdate,
		"getByID": q.getByID, "getByKey": q.getByKey, "lockByID": q.lockByID, "transition": q.transition,
		"purgeSelect": q.purgeSelect, "purgeOne": q.purgeOne, "rotateSelect": q.rotateSelect, "rotateUpdate": q.rotateUpdate,
		"cursorGet": q.cursorGet, "cursorSet": q.cursorSet, "auditAnchorSet": q.auditAnchorSet,
		"auditInsert": q.auditInsert, "auditVerifyPage": q.auditVerifyPage, "auditExchange": q.auditExchange,
		"countsSince": q.countsSince,
	} {
		if strings.Contains(stmt, "?") {
			t.Errorf("%s still has a '?': %s", name, stmt)
		}
		if !strings.Contains(stmt, "$1") {
			t.Errorf("%s has no $1: %s", name, stmt)
		}
	}
	for name, stmt := range map[string]string{"intakeFind": q.intakeFind, "lockByID": q.lockByID, "auditAnchorGet": q.auditAnchorGet,
		"purgeSelect": q.purgeSelect, "rotateSelect": q.rotateSelect} {
		if !strings.HasSuffix(stmt, " FOR UPDATE") {
			t.Errorf("%s reads a row it then updates without locking it: %s", name, stmt)
		}
	}
}

func TestDialectFor(t *testing.T) {
	t.Parallel()

	tests := []struct{ path, want string }{
		{"/var/lib/refbridge/refbridge.db", "sqlite"},
		{"refbridge.db", "sqlite"},
		{"postgres://refbridge@db:5432/refbridge", "postgres"},
		{"postgresql://refbridge@db/refbridge?sslmode=verify-full", "postgres"},
		{"POSTGRES://refbridge@db/refbridge", "postgres"},
		{"./postgres/refbridge.db", "sqlite"},
	}
	for _, tt := range tests {
		if got := dialectFor(tt.path).name; got != tt.want {
			t.Errorf("dialectFor(%q) = %s, want %s", tt.path, got, tt.want)
		}
	}
}
