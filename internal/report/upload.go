package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/objectstore"
	"github.com/mailtrace/mailtrace/internal/store"
)

// Metadata keys Upload sets on the object, besides Options.Metadata.
const (
	MetaKind  = "mailtrace-kind"
	MetaStart = "mailtrace-start"
	MetaEnd   = "mailtrace-end"
)

// Upload writes the report of q straight into obj under key, through a pipe:
// nothing is buffered beyond one part of the upload and a few store pages.
// The object is visible only once complete; when the trace store or the
// object store fails, or ctx ends, nothing is visible under key (an object
// already there is left as it was).
//
// The object's metadata holds Options.Metadata (e.g. namespace, name, uid),
// the kind and the query's time range. The row count and digest are only
// known at the end, after the object is committed: they are in the Result
// (for the MessageTrace's status), not in the object's metadata, because
// rewriting the metadata would copy the object and make it visible before
// it is final.
//
// The error wraps ErrTraceStore when reading the trace failed, and is the
// object store's (with its kind, see objectstore.Reason) when uploading failed.
func Upload(ctx context.Context, obj objectstore.Store, key string, st store.Reader, q mailflow.Query, opts Options, progress func(int64)) (Result, objectstore.UploadInfo, error) {
	kind := opts.Kind
	if kind == "" {
		kind = Summary
	}
	md := map[string]string{
		MetaKind:  string(kind),
		MetaStart: q.Start.UTC().Format(time.RFC3339),
		MetaEnd:   q.End.UTC().Format(time.RFC3339),
	}
	for k, v := range opts.Metadata {
		md[k] = v
	}
	uo := objectstore.UploadOptions{
		ContentType: ContentType,
		Metadata:    md,
		// Clients decode a gzip Content-Encoding, so the file they save is the CSV.
		ContentDisposition: fmt.Sprintf(`attachment; filename="%s"`, strings.TrimSuffix(path.Base(key), ".gz")),
	}
	if opts.Gzip {
		uo.ContentEncoding = "gzip"
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	var (
		res  Result
		werr error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		res, werr = Write(wctx, pw, st, q, opts, progress)
		pw.CloseWithError(werr) // nil: the upload sees EOF and completes
	}()
	info, uerr := obj.Upload(ctx, key, pr, uo)
	if uerr != nil {
		// Stop the writer, which may be blocked on the pipe.
		cancel()
		pr.CloseWithError(uerr)
	}
	<-done
	switch {
	case uerr == nil && werr == nil:
		if info.Size != res.Bytes {
			return res, info, fmt.Errorf("report: uploaded %d bytes but wrote %d", info.Size, res.Bytes)
		}
		return res, info, nil
	case werr != nil && (uerr == nil || errors.Is(uerr, werr)) && !errors.Is(werr, io.ErrClosedPipe):
		// The report failed first (trace store, cancellation); the upload
		// only saw its reader fail.
		return res, objectstore.UploadInfo{}, werr
	case uerr != nil:
		return res, objectstore.UploadInfo{}, uerr
	}
	return res, objectstore.UploadInfo{}, werr
}
