// Package objectstoretest is the conformance suite of the object-store port:
// every adapter runs it against a real server.
//
//	func TestConformance(t *testing.T) { objectstoretest.Run(t, harness) }
package objectstoretest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/objectstore"
)

// Fault selects a misconfigured store.
type Fault int

// Faults a harness must be able to produce.
const (
	// None: a working store on a fresh, empty bucket.
	None Fault = iota
	// MissingBucket: the bucket does not exist.
	MissingBucket
	// WrongSecret: a valid access key with a wrong secret key (the harness
	// must use WrongSecretKey, which the suite looks for in error messages).
	WrongSecret
	// Unreachable: nothing listens at the endpoint (a closed port).
	Unreachable
)

// WrongSecretKey is the secret key a WrongSecret store must use.
const WrongSecretKey = "wrong-secret-do-not-print-0123456789"

// Harness connects the suite to an adapter and its server.
type Harness struct {
	// New returns a store with fault f; for None, on a fresh, empty bucket.
	// Stores must accept UploadOptions.PartSize = objectstore.MinPartSize.
	New func(t testing.TB, f Fault) objectstore.Store
	// Incomplete returns the keys (relative to the store's prefix) of the
	// multipart uploads in progress under prefix.
	Incomplete func(t testing.TB, s objectstore.Store, prefix string) []string
	// StartIncomplete begins a multipart upload of key, uploads one part and
	// leaves it incomplete, like a writer that crashed.
	StartIncomplete func(t testing.TB, s objectstore.Store, key string)
}

// Run runs the suite. Subtests run one after another.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"MultipartUploadOfUnknownSizeRoundTrips", testMultipart},
		{"SmallAndEmptyObjects", testSmallAndEmpty},
		{"FailingReaderLeavesNothing", testFailingReader},
		{"CancelledContextLeavesNothing", testCancelled},
		{"OverwriteReplaces", testOverwrite},
		{"DeleteAndNotFound", testDelete},
		{"PresignedGetWorksWithPlainHTTP", testPresign},
		{"AbortIncompleteUnderPrefix", testAbortIncomplete},
		{"CheckSucceeds", testCheck},
		{"MissingBucket", testMissingBucket},
		{"WrongSecret", testWrongSecret},
		{"Unreachable", testUnreachable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// data is n deterministic pseudo-random bytes (incompressible).
type data struct {
	rnd  *rand.ChaCha8
	left int64
}

func newData(seed byte, n int64) *data {
	var s [32]byte
	s[0] = seed
	return &data{rnd: rand.NewChaCha8(s), left: n}
}

func (d *data) Read(p []byte) (int, error) {
	if d.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > d.left {
		p = p[:d.left]
	}
	_, _ = d.rnd.Read(p)
	d.left -= int64(len(p))
	return len(p), nil
}

func digest(t testing.TB, r io.Reader) ([32]byte, int64) {
	t.Helper()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d, n
}

func testMultipart(t *testing.T, h Harness) {
	ctx := ctxT(t)
	s := h.New(t, None)
	const size = 12<<20 + 12345 // three parts of 5 MiB: 5, 5 and the rest
	want, _ := digest(t, newData(1, size))

	// An io.Pipe hides the size, as the report writer does.
	pr, pw := io.Pipe()
	go func() {
		_, err := io.CopyBuffer(pw, newData(1, size), make([]byte, 64<<10))
		pw.CloseWithError(err)
	}()
	key := "reports/ns/trace-1/messagetrace.csv.gz"
	md := map[string]string{"namespace": "ns", "name": "trace-1", "Rows": "42"}
	info, err := s.Upload(ctx, key, pr, objectstore.UploadOptions{
		ContentType: "text/csv; charset=utf-8", ContentEncoding: "gzip", Metadata: md,
		PartSize: objectstore.MinPartSize,
	})
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if info.Size != size || info.Key != key || !strings.HasSuffix(info.Object, key) {
		t.Errorf("UploadInfo = %+v, want size %d and key %s", info, size, key)
	}
	// A multipart ETag ends in -<number of parts>.
	if i := strings.LastIndex(info.ETag, "-"); i < 0 || info.ETag[i+1:] != "3" {
		t.Errorf("ETag %q: want a multipart upload of 3 parts", info.ETag)
	}

	st, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if st.Size != size || st.ContentType != "text/csv; charset=utf-8" || st.ContentEncoding != "gzip" {
		t.Errorf("Stat = %+v", st)
	}
	for k, v := range md {
		if got := st.Metadata[strings.ToLower(k)]; got != v {
			t.Errorf("metadata %s = %q, want %q (all: %v)", k, got, v, st.Metadata)
		}
	}
	rc, err := s.Open(ctx, key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	got, n := digest(t, rc)
	rc.Close()
	if n != size || got != want {
		t.Errorf("downloaded %d bytes with sha256 %x, want %d bytes with %x", n, got, size, want)
	}
	if inc := h.Incomplete(t, s, ""); len(inc) != 0 {
		t.Errorf("incomplete uploads after a successful upload: %v", inc)
	}
}

func testSmallAndEmpty(t *testing.T, h Harness) {
	ctx := ctxT(t)
	s := h.New(t, None)
	for _, body := range []string{"", "origin_timestamp_utc\r\n", "héllo, wörld\n"} {
		key := fmt.Sprintf("small/%d.csv", len(body))
		// A reader that does not reveal its size.
		if _, err := s.Upload(ctx, key, io.MultiReader(strings.NewReader(body)), objectstore.UploadOptions{ContentType: "text/csv"}); err != nil {
			t.Fatalf("Upload %q: %v", body, err)
		}
		rc, err := s.Open(ctx, key)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(b) != body {
			t.Errorf("read back %q, %v; want %q", b, err, body)
		}
	}
}

var errBoom = errors.New("boom: the trace store went away")

// failAfter reads n bytes of data, then fails.
type failAfter struct {
	r   io.Reader
	n   int64
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

func expectNothing(t *testing.T, h Harness, s objectstore.Store, key string) {
	t.Helper()
	ctx := ctxT(t)
	if _, err := s.Stat(ctx, key); !errors.Is(err, objectstore.ErrNotFound) {
		t.Errorf("Stat after a failed upload: %v, want ErrNotFound", err)
	}
	if inc := h.Incomplete(t, s, key); len(inc) != 0 {
		t.Errorf("the failed upload was not aborted: incomplete %v", inc)
	}
	if err := s.AbortIncomplete(ctx, key); err != nil {
		t.Errorf("AbortIncomplete: %v", err)
	}
	if inc := h.Incomplete(t, s, key); len(inc) != 0 {
		t.Errorf("incomplete uploads after AbortIncomplete: %v", inc)
	}
}

func testFailingReader(t *testing.T, h Harness) {
	ctx := ctxT(t)
	s := h.New(t, None)
	key := "fail/messagetrace.csv"
	// Fail in the second part, after the first was uploaded.
	_, err := s.Upload(ctx, key, &failAfter{r: newData(2, 1<<30), n: 7 << 20, err: errBoom},
		objectstore.UploadOptions{PartSize: objectstore.MinPartSize})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Upload = %v, want the reader's error", err)
	}
	if errors.Is(err, objectstore.ErrUnreachable) || objectstore.Reason(err) != objectstore.ReasonUploadFailed {
		t.Errorf("a reader's error is classified as %s (%v)", objectstore.Reason(err), err)
	}
	expectNothing(t, h, s, key)

	// An existing object survives a failed overwrite.
	if _, err := s.Upload(ctx, key, strings.NewReader("old"), objectstore.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Upload(ctx, key, &failAfter{r: newData(3, 1<<30), n: 6 << 20, err: errBoom},
		objectstore.UploadOptions{PartSize: objectstore.MinPartSize}); !errors.Is(err, errBoom) {
		t.Fatalf("Upload = %v, want the reader's error", err)
	}
	rc, err := s.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "old" {
		t.Errorf("after a failed overwrite the object holds %d bytes, want the old 3", len(b))
	}
}

// cancelAfter cancels its context once n bytes were read.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

func testCancelled(t *testing.T, h Harness) {
	s := h.New(t, None)
	key := "cancel/messagetrace.csv"
	ctx, cancel := context.WithCancel(ctxT(t))
	_, err := s.Upload(ctx, key, &cancelAfter{r: newData(4, 1<<30), n: 6 << 20, cancel: cancel},
		objectstore.UploadOptions{PartSize: objectstore.MinPartSize})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Upload = %v, want context.Canceled", err)
	}
	if r := objectstore.Reason(err); r != objectstore.ReasonCanceled {
		t.Errorf("Reason = %s, want %s", r, objectstore.ReasonCanceled)
	}
	expectNothing(t, h, s, key)

	// A context cancelled before the upload starts.
	ctx, cancel = context.WithCancel(ctxT(t))
	cancel()
	if _, err := s.Upload(ctx, key, strings.NewReader("x"), objectstore.UploadOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Upload with a cancelled context = %v", err)
	}
	expectNothing(t, h, s, key)
}

func testOverwrite(t *testing.T, h Harness) {
	ctx := ctxT(t)
	s := h.New(t, None)
	key := "ns/name-uid/messagetrace.csv"
	for i, body := range []string{"first attempt, longer body\n", "second\n"} {
		if _, err := s.Upload(ctx, key, strings.NewReader(body), objectstore.UploadOptions{
			ContentType: "text/csv", Metadata: map[string]string{"attempt": fmt.Sprint(i + 1)},
		}); err != nil {
			t.Fatalf("Upload %d: %v", i+1, err)
		}
	}
	st, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != int64(len("second\n")) || st.Metadata["attempt"] != "2" {
		t.Errorf("after overwrite Stat = %+v, want the second upload", st)
	}
	rc, err := s.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "second\n" {
		t.Errorf("content %q, want the second upload", b)
	}
}

func testDelete(t *testing.T, h Harness) {
	ctx := ctxT(t)
	s := h.New(t, None)
	key := "del/x.csv"
	if _, err := s.Upload(ctx, key, strings.NewReader("x"), objectstore.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, objectstore.ErrNotFound) {
		t.Errorf("Stat after Delete = %v, want ErrNotFound", err)
	}
	if r := objectstore.Reason(func() error { _, err := s.Stat(ctx, key); return err }()); r != objectstore.ReasonNotFound {
		t.Errorf("Reason = %s", r)
	}
	if _, err := s.Open(ctx, key); !errors.Is(err, objectstore.ErrNotFound) {
		t.Errorf("Open after Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Errorf("Delete of a missing object = %v, want nil", err)
	}
}

func testPresign(t *testing.T, h Harness) {
	ctx := ctxT(t)
	s := h.New(t, None)
	key := "presign/messagetrace.csv"
	body := "origin_timestamp_utc,sender_address\r\n2026-01-02T03:04:05Z,a@example.com\r\n"
	if _, err := s.Upload(ctx, key, strings.NewReader(body), objectstore.UploadOptions{ContentType: "text/csv; charset=utf-8"}); err != nil {
		t.Fatal(err)
	}
	u, err := s.PresignGet(ctx, key, 10*time.Minute)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET presigned URL: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != body {
		t.Errorf("GET presigned URL: %s %q", resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	// The URL is signed: changing the key is refused.
	resp, err = http.Get(strings.Replace(u, "messagetrace.csv", "other.csv", 1))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("a tampered presigned URL was accepted")
		}
	}
	if _, err := s.PresignGet(ctx, key, 8*24*time.Hour); err == nil {
		t.Errorf("PresignGet accepted a validity of 8 days (S3 allows 7)")
	}
}

func testAbortIncomplete(t *testing.T, h Harness) {
	ctx := ctxT(t)
	s := h.New(t, None)
	keys := []string{"a/one/messagetrace.csv", "a/two/messagetrace.csv", "b/three/messagetrace.csv"}
	for _, k := range keys {
		h.StartIncomplete(t, s, k)
	}
	if got := h.Incomplete(t, s, ""); len(got) != 3 {
		t.Fatalf("incomplete uploads %v, want the 3 started", got)
	}
	if err := s.AbortIncomplete(ctx, "a/"); err != nil {
		t.Fatalf("AbortIncomplete: %v", err)
	}
	got := h.Incomplete(t, s, "")
	sort.Strings(got)
	if len(got) != 1 || got[0] != keys[2] {
		t.Errorf("after AbortIncomplete(a/) the incomplete uploads are %v, want [%s]", got, keys[2])
	}
	// The exact key.
	if err := s.AbortIncomplete(ctx, keys[2]); err != nil {
		t.Fatalf("AbortIncomplete: %v", err)
	}
	if got := h.Incomplete(t, s, ""); len(got) != 0 {
		t.Errorf("after AbortIncomplete(%s): %v", keys[2], got)
	}
	// Nothing to abort is fine; so is a later upload of the same key.
	if err := s.AbortIncomplete(ctx, "a/"); err != nil {
		t.Errorf("AbortIncomplete with nothing to do: %v", err)
	}
	if _, err := s.Upload(ctx, keys[0], bytes.NewReader([]byte("ok")), objectstore.UploadOptions{}); err != nil {
		t.Errorf("Upload after AbortIncomplete: %v", err)
	}
}

func testCheck(t *testing.T, h Harness) {
	ctx := ctxT(t)
	s := h.New(t, None)
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got := h.Incomplete(t, s, ""); len(got) != 0 {
		t.Errorf("Check left incomplete uploads: %v", got)
	}
}

func expectKind(t *testing.T, err error, kind error, reason string) {
	t.Helper()
	t.Logf("%s: %v", objectstore.Reason(err), err)
	if !errors.Is(err, kind) {
		t.Errorf("error %v: want %v", err, kind)
	}
	if r := objectstore.Reason(err); r != reason {
		t.Errorf("Reason(%v) = %s, want %s", err, r, reason)
	}
	if err != nil && strings.Contains(err.Error(), WrongSecretKey) {
		t.Errorf("the error message reveals the secret key: %v", err)
	}
}

func testMissingBucket(t *testing.T, h Harness) {
	ctx := ctxT(t)
	s := h.New(t, MissingBucket)
	expectKind(t, s.Check(ctx), objectstore.ErrBucketMissing, objectstore.ReasonBucketMissing)
	_, err := s.Upload(ctx, "x.csv", strings.NewReader("x"), objectstore.UploadOptions{})
	expectKind(t, err, objectstore.ErrBucketMissing, objectstore.ReasonBucketMissing)
	_, err = s.Stat(ctx, "x.csv")
	expectKind(t, err, objectstore.ErrBucketMissing, objectstore.ReasonBucketMissing)
}

func testWrongSecret(t *testing.T, h Harness) {
	ctx := ctxT(t)
	s := h.New(t, WrongSecret)
	expectKind(t, s.Check(ctx), objectstore.ErrAccessDenied, objectstore.ReasonAccessDenied)
	_, err := s.Upload(ctx, "x.csv", strings.NewReader("x"), objectstore.UploadOptions{})
	expectKind(t, err, objectstore.ErrAccessDenied, objectstore.ReasonAccessDenied)
	_, err = s.Stat(ctx, "x.csv")
	expectKind(t, err, objectstore.ErrAccessDenied, objectstore.ReasonAccessDenied)
}

func testUnreachable(t *testing.T, h Harness) {
	ctx := ctxT(t)
	s := h.New(t, Unreachable)
	expectKind(t, s.Check(ctx), objectstore.ErrUnreachable, objectstore.ReasonUnreachable)
	_, err := s.Upload(ctx, "x.csv", strings.NewReader("x"), objectstore.UploadOptions{})
	expectKind(t, err, objectstore.ErrUnreachable, objectstore.ReasonUnreachable)
	_, err = s.Open(ctx, "x.csv")
	expectKind(t, err, objectstore.ErrUnreachable, objectstore.ReasonUnreachable)
}
