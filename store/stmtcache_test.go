package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"modernc.org/sqlite"
)

func openCaching(t *testing.T) *sql.DB {
	t.Helper()
	connector, err := sqlite.NewConnector(filepath.Join(t.TempDir(), "cache.db"))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(cachingConnector{connector})
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')`); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestStatementCacheNestedSameQuery runs a query again while its own rows
// are still open: the second run must get a statement of its own, not
// reset the first one's cursor.
func TestStatementCacheNestedSameQuery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openCaching(t)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const q = `SELECT k, v FROM t WHERE k >= ? ORDER BY k`
	outer, err := tx.QueryContext(ctx, q, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for outer.Next() {
		var k int
		var v string
		if err := outer.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		var n int
		inner, err := tx.QueryContext(ctx, q, k)
		if err != nil {
			t.Fatal(err)
		}
		for inner.Next() {
			n++
		}
		inner.Close()
		got = append(got, fmt.Sprintf("%s%d", v, n))
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if want := "[a3 b2 c1]"; fmt.Sprint(got) != want {
		t.Fatalf("nested runs of one query gave %v, want %s", got, want)
	}
}

// TestStatementCacheReusesAndEvicts checks that repeated statements see
// fresh arguments and data, and that more distinct queries than the cache
// holds still all work.
func TestStatementCacheReusesAndEvicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openCaching(t)
	for i := range 3 {
		if _, err := db.ExecContext(ctx, `UPDATE t SET v = ? WHERE k = ?`, fmt.Sprint("v", i), i+1); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		var v string
		if err := db.QueryRowContext(ctx, `SELECT v FROM t WHERE k = ?`, i+1).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint("v", i); v != want {
			t.Fatalf("row %d: got %q, want %q", i+1, v, want)
		}
	}
	for i := range stmtCacheSize + 10 {
		var n int
		if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*) + %d FROM t`, i)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 3+i {
			t.Fatalf("query %d: got %d, want %d", i, n, 3+i)
		}
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM t WHERE v LIKE 'v%'`).Scan(new(int)); err != nil {
		t.Fatal(err)
	}
	// A failing statement leaves the cached one usable.
	if _, err := db.ExecContext(ctx, `INSERT INTO t VALUES (?, ?)`, 1, "dup"); err == nil {
		t.Fatal("inserting a duplicate key succeeded")
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO t VALUES (?, ?)`, 4, "d"); err != nil {
		t.Fatalf("the statement after a failed run: %v", err)
	}
}
