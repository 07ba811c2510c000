package postgres

import "github.com/mailtrace/mailtrace/internal/mailflow"

// What the scale benchmarks need from inside the adapter: the trace's SQL
// (to EXPLAIN it), and the values a bulk load writes as Append would.

// TraceSQL is traceSQL.
func TraceSQL(q mailflow.Query, limit int) (string, []any, error) { return traceSQL(q, "", limit) }

// StatusRank is the rank Append stores for a status (false: GettingStatus).
func StatusRank(s mailflow.Status) (int, bool) { r, ok := ranks[s]; return r, ok }

// Inet is the inet value Append stores for an IP address.
func Inet(ip string) any { return inet(ip) }

// PartName and Day name and size the daily partitions.
func PartName(table string, dayNS int64) string { return partName(table, dayNS) }

// Day is a partition's span in nanoseconds.
const Day = day
