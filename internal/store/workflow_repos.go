package store

import (
	"context"
	"fmt"
)

// Repositories added for the workflow's activities (activities/ledger.go).

// AuthorizationEvents returns the ledger events of one authorization (the authorization itself,
// its captures and reversals), oldest first, so a capture can be compared with what was
// authorized. An empty authorization id matches nothing.
func (s *Store) AuthorizationEvents(ctx context.Context, issuer, authorizationID string) ([]LedgerEvent, error) {
	if authorizationID == "" {
		return nil, nil
	}
	var es []LedgerEvent
	err := s.sel(ctx, &es, `SELECT * FROM ledger_events WHERE issuer = ? AND authorization_id = ? ORDER BY occurred_at, id`,
		issuer, authorizationID)
	if err != nil {
		return nil, fmt.Errorf("events of authorization %s/%s: %w", issuer, authorizationID, err)
	}
	return es, nil
}
