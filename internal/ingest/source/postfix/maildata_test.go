package postfix

import (
	"os"
	"path/filepath"
	"testing"
)

// maildata is the shared folder of real logs (see ../shared/maildata/SOURCES.md).
const maildata = "../../../../../shared/maildata"

// needMaildata skips when the shared folder is absent (a fresh clone).
func needMaildata(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(maildata, "expected.json")); err != nil {
		t.Skipf("%s is absent (a fresh clone): %v", maildata, err)
	}
}
