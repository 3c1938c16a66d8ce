// Package store is cardwarden's application database: agents, cards, the credential vault,
// the issuer event ledger, daily spend, alerts sent and the audit log. One set of sqlx
// repositories runs on Postgres (lib/pq) and on SQLite (modernc.org/sqlite), picked by the
// URL scheme. Temporal holds lifecycle state; this holds what people query and audit.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"  // postgres driver
	_ "modernc.org/sqlite" // pure-Go sqlite driver
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// Dialect names the SQL flavour of a Store.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// Store is the application database.
type Store struct {
	db      *sqlx.DB
	dialect Dialect
	events  eventWriter // RecordEvent's shared transactions
}

// Open connects to the database named by rawURL: postgres://… or postgresql://… for Postgres,
// sqlite://path (or sqlite::memory:) for SQLite. It does not run migrations; call Migrate.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	driver, dsn, dialect, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	db, err := sqlx.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	if dialect == SQLite {
		// SQLite allows one writer; one connection turns lock contention into queueing.
		db.SetMaxOpenConns(1)
	} else {
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(10)
	}
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	return &Store{db: db, dialect: dialect}, nil
}

func parseURL(rawURL string) (driver, dsn string, dialect Dialect, err error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return "postgres", rawURL, Postgres, nil
	case strings.HasPrefix(rawURL, "sqlite://"), strings.HasPrefix(rawURL, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite://"), "sqlite:")
		if path == "" {
			return "", "", "", fmt.Errorf("database URL %q: sqlite needs a path, e.g. sqlite://./.cardwarden/cardwarden.db", rawURL)
		}
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_time_format", "sqlite")
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		if path == ":memory:" {
			path = "file::memory:"
		}
		return "sqlite", path + sep + q.Encode(), SQLite, nil
	default:
		return "", "", "", fmt.Errorf("database URL %q: unsupported scheme (want postgres:// or sqlite://)", rawURL)
	}
}

// Dialect reports which database this store talks to.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB exposes the connection pool for benchmarks and tests.
func (s *Store) DB() *sqlx.DB { return s.db }

// Close releases the connection pool.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks the database is reachable, for readiness probes.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func (s *Store) rebind(q string) string { return s.db.Rebind(q) }

func (s *Store) get(ctx context.Context, dest any, q string, args ...any) error {
	err := s.db.GetContext(ctx, dest, s.rebind(q), args...)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return s.db.ExecContext(ctx, s.rebind(q), args...)
}

func (s *Store) sel(ctx context.Context, dest any, q string, args ...any) error {
	return s.db.SelectContext(ctx, dest, s.rebind(q), args...)
}

// utc normalizes times so both databases store and return the same instant the same way.
func utc(t time.Time) time.Time { return t.UTC() }

func (s *Store) updateOne(ctx context.Context, what, q string, args ...any) error {
	res, err := s.exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// IsNotFound reports whether err means a missing row.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// one reads one row into a T, or ErrNotFound; what says what it is in the error.
func one[T any](ctx context.Context, s *Store, what, q string, args ...any) (T, error) {
	var v T
	if err := s.get(ctx, &v, q, args...); err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

// list reads rows into Ts; what says what they are in the error.
func list[T any](ctx context.Context, s *Store, what, q string, args ...any) ([]T, error) {
	var vs []T
	if err := s.sel(ctx, &vs, q, args...); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return vs, nil
}
