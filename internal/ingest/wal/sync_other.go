//go:build !linux

package wal

import "os"

// datasync writes a file to disk.
func datasync(f *os.File) error { return f.Sync() }

// lockDir takes no lock where flock(2) is not at hand.
func lockDir(string) (*os.File, error) { return nil, nil }
