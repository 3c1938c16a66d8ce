package issuersim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Persistence: the whole state is a JSON snapshot, written atomically after changes (at once
// when asked to be durable), and loaded at start.

// snapshot is the persisted form of state.
type snapshot struct {
	Version        int              `json:"version"`
	SavedAt        time.Time        `json:"saved_at"`
	ClockOffset    time.Duration    `json:"clock_offset"`
	Cards          []*card          `json:"cards"`
	Authorizations []*authorization `json:"authorizations"`
	Transactions   []*transaction   `json:"transactions"`
	Events         []*event         `json:"events"`
	Idempotency    []*idemRecord    `json:"idempotency"`
	Pending        []string         `json:"pending_webhooks"`
}

func (st *state) snapshot(now time.Time, offset time.Duration) *snapshot {
	s := &snapshot{Version: snapshotVersion, SavedAt: now, ClockOffset: offset, Events: st.events}
	s.Cards = st.sortedCards()
	for _, c := range s.Cards {
		s.Authorizations = append(s.Authorizations, st.cardAuths[c.ID]...)
		s.Transactions = append(s.Transactions, st.cardTxns[c.ID]...)
	}
	for _, r := range st.idem {
		s.Idempotency = append(s.Idempotency, r)
	}
	sort.Slice(s.Idempotency, func(i, j int) bool { return s.Idempotency[i].Key < s.Idempotency[j].Key })
	for id := range st.pending {
		s.Pending = append(s.Pending, id)
	}
	sort.Strings(s.Pending)
	return s
}

func stateFromSnapshot(s *snapshot) (*state, error) {
	if s.Version != snapshotVersion {
		return nil, fmt.Errorf("state file version %d, want %d", s.Version, snapshotVersion)
	}
	st := newState()
	for _, c := range s.Cards {
		st.addCard(c)
	}
	for _, a := range s.Authorizations {
		st.addAuth(a)
	}
	for _, t := range s.Transactions {
		st.addTxn(t)
	}
	for _, e := range s.Events {
		st.addEvent(e)
	}
	for _, r := range s.Idempotency {
		st.idem[r.Key] = r
	}
	for _, id := range s.Pending {
		if st.eventByID[id] != nil {
			st.pending[id] = true
		}
	}
	return st, nil
}

// loadSnapshot reads path; a missing file is an empty state, not an error, so the first run
// of `issuer-sim --state FILE` just works.
func loadSnapshot(path string) (*snapshot, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse state %s: %w", path, err)
	}
	return &s, nil
}

// writeFileAtomic writes through a temp file and a rename so a crash mid-write never leaves a
// truncated state file behind. The file holds card numbers, hence 0600.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("state temp file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("state chmod: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename state: %w", err)
	}
	return nil
}

// changedLocked records that state changed. sync asks for the state file to be written
// before the response is sent (card creation and status changes, so a restart never forgets
// a card an adapter was told about); everything else is flushed in the background within
// flushInterval. Callers hold s.mu.
func (s *Server) changedLocked(sync bool) {
	s.dirty = true
	s.syncFlush = s.syncFlush || sync
}

// takeSyncFlushLocked reports and clears a pending synchronous flush. Callers hold s.mu.
func (s *Server) takeSyncFlushLocked() bool {
	f := s.syncFlush
	s.syncFlush = false
	return f && s.statePath != ""
}

func (s *Server) flushLoop() {
	defer s.wg.Done()
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			dirty := s.dirty
			s.mu.Unlock()
			if dirty {
				if err := s.flush(); err != nil {
					s.log.Error("issuersim: saving state", "path", s.statePath, "err", err)
				}
			}
		}
	}
}

// flush writes the current state to StatePath.
func (s *Server) flush() error {
	if s.statePath == "" {
		return nil
	}
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	s.mu.Lock()
	b, err := json.Marshal(s.st.snapshot(s.nowLocked(), s.clockOffset))
	s.dirty = false
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return writeFileAtomic(s.statePath, b)
}
