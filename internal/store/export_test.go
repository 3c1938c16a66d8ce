package store

// PriorEventsQuery is the query RecordEvent reads an authorization's earlier events with,
// rebound for s's database, for the test that checks its plan.
func (s *Store) PriorEventsQuery() string { return s.rebind(priorEventsQuery) }
