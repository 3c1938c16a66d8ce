package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// Group commit for the ledger. A webhook's event is acknowledged once its transaction is
// committed, and on SQLite (one connection, a durable commit each) the commit, not the
// statements, was most of a delivery's time: concurrent deliveries queued behind each other's
// commits. Events that arrive while a transaction is being written now wait together and go
// in the next one, so the commit's cost is shared while each caller still returns only once
// its own event is durable.

// maxEventsPerCommit bounds a shared transaction, so a backlog is written in bounded steps.
const maxEventsPerCommit = 64

// postgresWriters is how many shared transactions run at once on Postgres, which commits
// concurrent transactions together itself and serves each from its own connection; SQLite
// has one connection, so one.
const postgresWriters = 4

// eventWriteTimeout bounds one shared transaction; a caller's own context is honoured only
// until its event is taken into one.
const eventWriteTimeout = 30 * time.Second

// eventWriter queues RecordEvent calls for the goroutine writing them; the zero value is ready.
type eventWriter struct {
	mu      sync.Mutex
	queue   []*eventWrite
	writers int // goroutines writing

	prepMu   sync.Mutex
	prepared *writeStmts
}

// writeStmts are the writer's statements, prepared once: on SQLite, parsing them again for
// every event took most of a shared transaction's time.
type writeStmts struct {
	owner, insert, existing, prior, spend *sqlx.Stmt
}

// statements prepares the writer's statements the first time they are needed (again after a
// failure).
func (q *eventWriter) statements(ctx context.Context, s *Store) (*writeStmts, error) {
	q.prepMu.Lock()
	defer q.prepMu.Unlock()
	if q.prepared != nil {
		return q.prepared, nil
	}
	var st writeStmts
	for _, p := range []struct {
		dst **sqlx.Stmt
		q   string
	}{{&st.owner, ownerQuery}, {&st.insert, insertEventQuery}, {&st.existing, existingEventQuery},
		{&st.prior, priorEventsQuery}, {&st.spend, addSpendQuery}} {
		stmt, err := s.db.PreparexContext(ctx, s.rebind(p.q))
		if err != nil {
			for _, done := range []*sqlx.Stmt{st.owner, st.insert, st.existing, st.prior, st.spend} {
				if done != nil {
					_ = done.Close()
				}
			}
			return nil, fmt.Errorf("prepare the ledger's statements: %w", err)
		}
		*p.dst = stmt
	}
	q.prepared = &st
	return q.prepared, nil
}

// in is the statements for use inside tx.
func (p *writeStmts) in(ctx context.Context, tx *sqlx.Tx) writeStmts {
	return writeStmts{owner: tx.StmtxContext(ctx, p.owner), insert: tx.StmtxContext(ctx, p.insert),
		existing: tx.StmtxContext(ctx, p.existing), prior: tx.StmtxContext(ctx, p.prior), spend: tx.StmtxContext(ctx, p.spend)}
}

// eventWrite is one RecordEvent, RecordCardEvent or MarkSignalled call: its input, and its
// answer once done is closed.
type eventWrite struct {
	ctx    context.Context
	e      LedgerEvent
	marks  []EventKey // MarkSignalled: the events to mark signalled at markAt
	markAt time.Time
	lookup bool   // the agent is the card's owner, looked up in the transaction
	owner  string // with lookup: the agent the card must be (ErrNotOwner otherwise); "" any
	deltas func(o CardOwner, prior []LedgerEvent) ([]SpendDelta, error)

	found    CardOwner
	isNew    bool
	existing *LedgerEvent // not new: the row the ledger already had
	err      error
	done     chan struct{}
}

// write queues w and waits until it is committed (or failed).
func (q *eventWriter) write(s *Store, w *eventWrite) {
	q.mu.Lock()
	q.queue = append(q.queue, w)
	if q.writers < writers(s.dialect) {
		q.writers++
		go q.run(s)
	}
	q.mu.Unlock()
	<-w.done
}

// writers is how many goroutines write the ledger at once on the dialect.
func writers(d Dialect) int {
	if d == Postgres {
		return postgresWriters
	}
	return 1
}

// run writes what is queued, a transaction at a time, until the queue is empty.
func (q *eventWriter) run(s *Store) {
	for {
		q.mu.Lock()
		n := min(len(q.queue), maxEventsPerCommit)
		if n == 0 {
			q.writers--
			q.mu.Unlock()
			return
		}
		batch := q.queue[:n:n]
		q.queue = q.queue[n:]
		q.mu.Unlock()
		q.commit(s, batch)
	}
}

// commit writes a batch in one transaction. If that fails, each event is written in its own,
// so one event that cannot be written (or a deadlock between two processes' batches on
// Postgres) fails only itself.
func (q *eventWriter) commit(s *Store, batch []*eventWrite) {
	live := batch[:0:0]
	for _, w := range batch {
		if err := w.ctx.Err(); err != nil {
			w.err = fmt.Errorf("%s: %w", w, err)
			close(w.done)
			continue
		}
		live = append(live, w)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventWriteTimeout)
	defer cancel()
	if err := s.recordEvents(ctx, live); err != nil {
		for _, w := range live {
			if len(live) > 1 {
				err = s.recordEvents(ctx, []*eventWrite{w})
			}
			if err != nil {
				w.found, w.isNew, w.existing, w.err = CardOwner{}, false, nil, fmt.Errorf("%s: %w", w, err)
			}
		}
	}
	for _, w := range live {
		close(w.done)
	}
}

// String names the write for errors.
func (w *eventWrite) String() string {
	if w.marks != nil {
		return fmt.Sprintf("mark %d events signalled", len(w.marks))
	}
	return fmt.Sprintf("record event %s/%s", w.e.Issuer, w.e.IssuerEventID)
}
