package postgres

// AppendConcurrency is how many Appends the ingester runs at once by
// default (store.ConcurrentAppender): each is a backend of its own, so two
// use a second core of the server for index maintenance, the bulk of an
// append's cost, while the ingester's one correlator goes on. Appends of
// different messages touch different rows; what they share (the rollups'
// hour keys) is written last in each transaction, one append at a time
// (appendTx, rollupLockSQL).
func (s *Store) AppendConcurrency() int { return 2 }
