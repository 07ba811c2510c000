// Package reportbench measures a Summary report streamed from PostgreSQL to
// MinIO against PostgreSQL's own COPY of the same rows (see bench_test.go).
// It holds no code besides its benchmark.
package reportbench
