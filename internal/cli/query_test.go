package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The flags parse as documented: repeatable and comma-separated values, --sender too.
func TestQueryFlagsParse(t *testing.T) {
	cmd := newQueryCommand()
	if err := cmd.ParseFlags([]string{
		"--sender", "a@example.com", "--sender", "*@partner.example,c@example.com",
		"--recipient", "x@*", "--status", "Failed,Pending", "--status", "Quarantined",
		"--since", "7d", "-o", "csv", "--all", "--store", "sqlite:///tmp/x.db",
	}); err != nil {
		t.Fatal(err)
	}
	senders, _ := cmd.Flags().GetStringSlice("sender")
	statuses, _ := cmd.Flags().GetStringSlice("status")
	all, _ := cmd.Flags().GetBool("all")
	limit, _ := cmd.Flags().GetInt("limit")
	if !reflect.DeepEqual(senders, []string{"a@example.com", "*@partner.example", "c@example.com"}) ||
		!reflect.DeepEqual(statuses, []string{"Failed", "Pending", "Quarantined"}) || !all || limit != 500 {
		t.Fatalf("senders %v statuses %v all %v limit %d", senders, statuses, all, limit)
	}
}

// --help shows --store's default; a password from MAILTRACE_STORE stays hidden.
func TestHelpHidesStorePassword(t *testing.T) {
	t.Setenv(EnvStore, "postgres://mt:s3cret@db/mailtrace")
	for _, args := range [][]string{{"query", "--help"}, {"manager", "--help"}, {"events", "load", "--help"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(""), &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		if strings.Contains(out.String()+errOut.String(), "s3cret") || !strings.Contains(out.String(), "postgres://mt:xxxxx@db/mailtrace") {
			t.Errorf("%v help:\n%s", args, out.String())
		}
	}
}

// TestReadOnlyCommandsRefuseAMissingStore: query and details on a store
// that does not exist (a mistyped --store) fail naming it, and create
// nothing; ingest creates it, after which query reads it.
func TestReadOnlyCommandsRefuseAMissingStore(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	const missing, notAStore = "does not exist", "a path ending in .db"
	for _, tc := range []struct{ store, name, why string }{
		{"sqlite://" + filepath.Join(dir, "typo", "trace.db"), filepath.Join(dir, "typo", "trace.db"), missing},
		// Not a store URL at all (a bare path must end in .db): refused
		// before any file is looked for.
		{"trace.bd", "trace.bd", notAStore},
		{"sqlite://rel/trace.db", filepath.Join(dir, "rel", "trace.db"), missing},
	} {
		for _, args := range [][]string{
			{"query", "--store", tc.store, "--since", "1d"},
			{"details", "--store", tc.store, "--trace-id", "m1"},
		} {
			var out, errOut bytes.Buffer
			code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
			if code == 0 || !strings.Contains(errOut.String(), tc.name) || !strings.Contains(errOut.String(), tc.why) ||
				tc.why == missing && !strings.Contains(errOut.String(), "--store") {
				t.Errorf("%v: exit %d, stderr %q, stdout %q; want an error naming %s", args, code, errOut.String(), out.String(), tc.name)
			}
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the read-only commands created %s", ents[0].Name())
	}

	log := filepath.Join(dir, "mail.log")
	if err := os.WriteFile(log, []byte("Mar  1 10:00:01 mx postfix/qmgr[2]: ABCDE12345: from=<a@example.com>, size=100, nrcpt=1 (queue active)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := "sqlite://" + filepath.Join(dir, "new", "trace.db")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"ingest", "--file", log, "--store", db, "--retention", "0"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("ingest into a new store: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"query", "--store", db, "--since", "1d"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Errorf("query of the store ingest made: exit %d, %s", code, errOut.String())
	}
}
