package refbridgetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, to create test databases
)

// PostgresEnv names the PostgreSQL server the suites that need one use;
// .ci/run sets it, so there they never skip.
const PostgresEnv = "REFBRIDGE_TEST_POSTGRES"

// PostgresDB creates a fresh database on the server PostgresEnv names and
// returns its URL; it is dropped when tb ends. Without the variable tb is
// skipped (a developer's machine without PostgreSQL); with it, a server
// that does not answer fails tb: CI must not pass by skipping.
func PostgresDB(tb testing.TB) string {
	tb.Helper()
	admin := os.Getenv(PostgresEnv)
	if admin == "" {
		tb.Skipf("%s is not set: set it to a PostgreSQL URL (as .ci/run does) to run this", PostgresEnv)
	}
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("%s is not a URL: %v", PostgresEnv, err)
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		tb.Fatalf("%s: %v", PostgresEnv, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		tb.Fatalf("%s is set but the server at %s does not answer: %v", PostgresEnv, u.Host, err)
	}
	var suffix [6]byte
	rand.Read(suffix[:])
	name := "refbridge_test_" + hex.EncodeToString(suffix[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		db, err := sql.Open("pgx", admin)
		if err != nil {
			tb.Error(err)
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
