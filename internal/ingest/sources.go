package ingest

import (
	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/ingest/source/postfix"
)

// sources are the log sources a Correlator reads, each a package under
// source/ that implements source.Source: a line goes to the first that
// claims it. A new source is its package and one line here.
var sources = []source.Registration{
	{Name: "postfix", New: postfix.New},
}
