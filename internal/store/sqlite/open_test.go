package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

func TestOpenTwice(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "b.db")
	for i := 0; i < 2; i++ {
		s, err := Open(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}
