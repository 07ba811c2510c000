// Package cli holds the `mailtrace` subcommands (cobra).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mailtrace/mailtrace/internal/store"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"
)

// EnvStore names the environment variable that sets --store's default.
const EnvStore = "MAILTRACE_STORE"

// DefaultStore is the store used when neither --store nor MAILTRACE_STORE says otherwise.
const DefaultStore = "sqlite:///var/lib/mailtrace/mailtrace.db"

// exitError carries an exit status; its message has already been printed
// when the message is empty.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// Main runs the command line and returns the process exit status. extra
// are commands the binary adds to NewRootCommand's (cmd/mailtrace adds
// `demo` when built with the demo tag).
func Main(args []string, extra ...*cobra.Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Stdin, os.Stdout, os.Stderr, extra...)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, extra ...*cobra.Command) int {
	root := NewRootCommand(extra...)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "Error:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "Error:", err)
	return 1
}

// NewRootCommand builds the `mailtrace` command tree, with extra commands
// (such as internal/democmd's `demo`, which this package does not import so
// that the operator's binary does not link envtest).
func NewRootCommand(extra ...*cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:   "mailtrace",
		Short: "Message trace for mail systems you run yourself",
		Long: `mailtrace follows messages through your organisation's mail flow.

Mail logs become events in a trace store; MessageTrace objects in Kubernetes
say what to trace, and the manager writes the answer into their status.
The same traces can be run straight against a store with "mailtrace query".`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newManagerCommand(),
		newQueryCommand(),
		newDetailsCommand(),
		newEventsCommand(),
		newIngestCommand(),
		newVersionCommand(),
	)
	root.AddCommand(extra...)
	return root
}

// storeDefault is --store's default: MAILTRACE_STORE, else DefaultStore.
func storeDefault() string {
	if v := os.Getenv(EnvStore); v != "" {
		return v
	}
	return DefaultStore
}

func addStoreFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "store", storeDefault(),
		"trace store URL: sqlite:///abs/path.db, sqlite://relative/path.db, or postgres://user:pass@host/db (env "+EnvStore+")")
	// --help shows the default; a password from MAILTRACE_STORE must not appear there.
	f := cmd.Flags().Lookup("store")
	f.DefValue = storeopen.Redact(f.DefValue)
}

// openExisting opens the store of a command that only reads it (query,
// details): a store that does not exist is an error naming it, never a new
// empty one that answers "No messages match".
func openExisting(ctx context.Context, url string) (store.Store, error) {
	st, err := storeopen.OpenWithOptions(ctx, url, storeopen.Options{MustExist: true})
	if errors.Is(err, storeopen.ErrNotExist) {
		return nil, fmt.Errorf("%w: check --store (or %s); mailtrace ingest and mailtrace manager create a store, this command only reads one", err, EnvStore)
	}
	return st, err
}
