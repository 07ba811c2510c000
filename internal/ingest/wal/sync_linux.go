package wal

import (
	"os"
	"syscall"
)

// datasync writes a file's data (and the size that reaches it) to disk.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
