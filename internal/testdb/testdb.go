// Package testdb gives tests a fresh, migrated database: a throwaway Postgres database on the
// server named by CARDWARDEN_TEST_DATABASE_URL (default the project machines' local server),
// or a SQLite file in the test's temp dir.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/lib/pq" // postgres driver

	"github.com/cardwarden/cardwarden/internal/store"
)

// DefaultPostgresURL is the project machines' local Postgres.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// SkipWithoutPostgres skips a test for want of PostgreSQL, or fails it when
// CARDWARDEN_REQUIRE_POSTGRES=1 (CI), where a missing Postgres is an error, not a reason.
func SkipWithoutPostgres(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CARDWARDEN_REQUIRE_POSTGRES") == "1" {
		t.Fatalf("PostgreSQL is required (CARDWARDEN_REQUIRE_POSTGRES=1): %s", msg)
	}
	t.Skip(msg)
}

// PostgresURL returns a URL to a new, empty database that is dropped when the test ends. With
// no reachable server the test is skipped, or fails when CARDWARDEN_REQUIRE_POSTGRES=1 (CI).
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("CARDWARDEN_TEST_DATABASE_URL")
	if base == "" {
		base = DefaultPostgresURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := sql.Open("postgres", base)
	if err == nil {
		err = admin.PingContext(ctx)
	}
	if err != nil {
		SkipWithoutPostgres(t, "no Postgres reachable at CARDWARDEN_TEST_DATABASE_URL: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "cw_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("CARDWARDEN_TEST_DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// SQLiteURL returns a URL to a SQLite file in the test's temp dir.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "cardwarden.db")
}

// Open opens and migrates the store at url, closing it when the test ends.
func Open(t testing.TB, url string) *store.Store {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, url)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate store: %v", err)
	}
	return s
}

// Each runs fn as a subtest once on SQLite and once on Postgres with a fresh migrated store.
func Each(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, Open(t, SQLiteURL(t))) })
	t.Run("postgres", func(t *testing.T) { fn(t, Open(t, PostgresURL(t))) })
}

// InsertEvent records a ledger row with the given daily spend deltas (store.RecordEvent with
// deltas fixed in advance) and reports whether the row was new.
func InsertEvent(t testing.TB, st *store.Store, e store.LedgerEvent, spend ...store.SpendDelta) bool {
	t.Helper()
	isNew, err := st.RecordEvent(context.Background(), e, func([]store.LedgerEvent) ([]store.SpendDelta, error) { return spend, nil })
	if err != nil {
		t.Fatalf("insert event %s: %v", e.IssuerEventID, err)
	}
	return isNew
}

// CountEvents counts the ledger's rows.
func CountEvents(t testing.TB, st *store.Store) int64 {
	t.Helper()
	var n int64
	if err := st.DB().GetContext(context.Background(), &n, `SELECT COUNT(*) FROM ledger_events`); err != nil {
		t.Fatalf("count events: %v", err)
	}
	return n
}
