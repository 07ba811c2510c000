package maillab_test

import (
	"testing"

	"github.com/mailtrace/mailtrace/internal/testutil/maillab"
	"github.com/mailtrace/mailtrace/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestStart starts the lab; Start itself sends a probe message through
// every component and waits for its Delivered row.
func TestStart(t *testing.T) {
	l := maillab.Start(t)
	if got := l.Mailbox("alice@"+maillab.Domain, "INBOX"); len(got) != 1 {
		t.Errorf("alice's INBOX holds %d messages, want the probe", len(got))
	}
}
