package objectstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"

	"github.com/mailtrace/mailtrace/internal/egress"
)

// MaxPresignTTL is the longest validity S3 allows for a presigned URL.
const MaxPresignTTL = 7 * 24 * time.Hour

// s3Store is the S3 adapter.
type s3Store struct {
	c        *minio.Client
	core     minio.Core
	bucket   string
	prefix   string // "" or ending in "/"
	partSize int64
	buffers  int
	sse      encrypt.ServerSide
	secrets  []string // scrubbed from error messages
}

var _ Store = (*s3Store)(nil)

// New returns the S3 adapter for cfg. It does not contact the server: call
// Check for that.
func New(cfg Config) (Store, error) {
	s := &s3Store{bucket: cfg.Bucket, partSize: cfg.PartSize, buffers: cfg.UploadBuffers}
	for _, v := range []string{cfg.SecretKey, cfg.SessionToken} {
		if v != "" {
			s.secrets = append(s.secrets, v)
		}
	}
	if cfg.Bucket == "" {
		return nil, s.invalid("bucket is required")
	}
	if p := strings.Trim(cfg.Prefix, "/"); p != "" {
		s.prefix = p + "/"
	}
	if s.partSize == 0 {
		s.partSize = DefaultPartSize
	}
	if s.partSize < MinPartSize {
		return nil, s.invalid(fmt.Sprintf("part size %d is below the S3 minimum of %d bytes (5 MiB)", s.partSize, MinPartSize))
	}
	sse, err := parseSSE(cfg.SSE)
	if err != nil {
		return nil, s.invalid(err.Error())
	}
	s.sse = sse

	host, secure := cfg.Endpoint, !cfg.Insecure
	switch {
	case host == "":
		host = "s3.amazonaws.com"
	case strings.Contains(host, "://"):
		u, err := url.Parse(host)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, s.invalid(fmt.Sprintf("endpoint %q is not host[:port] or a bare http(s):// URL", cfg.Endpoint))
		}
		switch u.Scheme {
		case "http":
			secure = false
		case "https":
			if cfg.Insecure {
				return nil, s.invalid(fmt.Sprintf("endpoint %q is https but insecure (plain HTTP) is set", cfg.Endpoint))
			}
		default:
			return nil, s.invalid(fmt.Sprintf("endpoint %q: scheme must be http or https", cfg.Endpoint))
		}
		host = u.Host
	}

	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, s.invalid(err.Error())
	}
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if cfg.DialContext != nil {
		// A guarded dialer (internal/egress) decides where it may connect;
		// a proxy from the environment would connect out of its sight.
		tr.DialContext = cfg.DialContext
		tr.Proxy = nil
	}
	if len(cfg.CABundle) > 0 {
		if !secure {
			return nil, s.invalid("a CA bundle is set but the endpoint is plain HTTP")
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(cfg.CABundle) {
			return nil, s.invalid("the CA bundle holds no PEM certificate")
		}
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tr.TLSClientConfig.RootCAs = pool
	}

	var creds *credentials.Credentials
	if cfg.AccessKey != "" {
		if cfg.SecretKey == "" {
			return nil, s.invalid("an access key is set without a secret key")
		}
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.IAM{},
		})
	}
	c, err := minio.New(host, &minio.Options{
		Creds:      creds,
		Secure:     secure,
		Transport:  tr,
		Region:     cfg.Region,
		MaxRetries: cfg.MaxRetries,
	})
	if err != nil {
		return nil, s.invalid(err.Error())
	}
	s.c, s.core = c, minio.Core{Client: c}
	return s, nil
}

func parseSSE(v string) (encrypt.ServerSide, error) {
	switch {
	case v == "":
		return nil, nil
	case v == "AES256":
		return encrypt.NewSSE(), nil
	case strings.HasPrefix(v, "aws:kms:"):
		id := strings.TrimPrefix(v, "aws:kms:")
		if id == "" {
			return nil, errors.New(`SSE "aws:kms:" needs a key id`)
		}
		return encrypt.NewSSEKMS(id, nil)
	}
	return nil, fmt.Errorf(`SSE %q is not "", "AES256" or "aws:kms:<key-id>"`, v)
}

func (s *s3Store) invalid(msg string) error {
	return &Error{Op: "configure", Kind: ErrInvalidConfig, msg: s.scrub(msg)}
}

func (s *s3Store) object(key string) string { return s.prefix + strings.TrimLeft(key, "/") }

func (s *s3Store) Check(ctx context.Context) error {
	ok, err := s.c.BucketExists(ctx, s.bucket)
	if err != nil {
		return s.wrap(ctx, "check", "", err)
	}
	if !ok {
		return &Error{Op: "check", Kind: ErrBucketMissing, msg: fmt.Sprintf("bucket %q", s.bucket)}
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	probe := s.object(".mailtrace-probe-" + hex.EncodeToString(rnd[:]))
	body := []byte("mailtrace write probe\n")
	_, perr := s.c.PutObject(ctx, s.bucket, probe, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{
		ContentType: "text/plain", ServerSideEncryption: s.sse,
	})
	// The probe is removed even when ctx ends meanwhile (a manager stopping
	// mid-check): a PUT cancelled after the server stored it must not leave
	// a stray object in the user's bucket.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeCleanupTimeout)
	defer cancel()
	rerr := s.c.RemoveObject(rctx, s.bucket, probe, minio.RemoveObjectOptions{})
	if perr != nil {
		return s.wrap(ctx, "check (write probe)", probe, perr)
	}
	if rerr != nil {
		return s.wrap(rctx, "check (delete probe)", probe, rerr)
	}
	return nil
}

// probeCleanupTimeout bounds the removal of a write probe once the check's
// own context has ended.
const probeCleanupTimeout = 10 * time.Second

func (s *s3Store) Upload(ctx context.Context, key string, r io.Reader, opts UploadOptions) (UploadInfo, error) {
	obj := s.object(key)
	ps := opts.PartSize
	if ps == 0 {
		ps = s.partSize
	}
	if ps < MinPartSize {
		return UploadInfo{}, &Error{Op: "upload", Object: obj, Kind: ErrInvalidConfig,
			msg: fmt.Sprintf("part size %d is below the S3 minimum of %d bytes", ps, MinPartSize)}
	}
	if err := ctx.Err(); err != nil {
		return UploadInfo{}, s.wrap(ctx, "upload", obj, err)
	}
	// Size -1 with a fixed PartSize: minio-go runs a sequential multipart
	// upload holding one part in memory, completes it at EOF and aborts it on
	// any error (even when ctx is cancelled). Without PartSize it would size
	// parts for a 5 TiB object and buffer up to 512 MiB.
	cr := &ctxReader{ctx: ctx, r: r}
	info, err := s.c.PutObject(ctx, s.bucket, obj, cr, -1, minio.PutObjectOptions{
		ContentType:          opts.ContentType,
		ContentEncoding:      opts.ContentEncoding,
		ContentDisposition:   opts.ContentDisposition,
		UserMetadata:         opts.Metadata,
		PartSize:             uint64(ps),
		ServerSideEncryption: s.sse,
		// With more than one buffer, minio-go fills them in turn and
		// uploads them concurrently (and still aborts on any error).
		ConcurrentStreamParts: s.buffers > 1,
		NumThreads:            uint(max(s.buffers, 1)),
	})
	if err != nil {
		if cr.err != nil && errors.Is(err, cr.err) && ctx.Err() == nil {
			// The content failed, not the store: do not classify it (a
			// network error of the trace store is no object-store outage).
			return UploadInfo{}, &Error{Op: "upload", Object: obj, msg: "reading the content: " + s.scrub(err.Error()), err: err}
		}
		return UploadInfo{}, s.wrap(ctx, "upload", obj, err)
	}
	return UploadInfo{Bucket: s.bucket, Key: key, Object: obj, ETag: info.ETag, VersionID: info.VersionID, Size: info.Size}, nil
}

// ctxReader stops a stream when its context ends, so an upload fed by a
// reader that never fails is still interrupted between parts.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	err error // the reader's own failure, if any
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

func (s *s3Store) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	obj := s.object(key)
	oi, err := s.c.StatObject(ctx, s.bucket, obj, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, s.notFound(ctx, s.wrap(ctx, "stat", obj, err))
	}
	return s.info(key, oi), nil
}

func (s *s3Store) info(key string, oi minio.ObjectInfo) ObjectInfo {
	md := make(map[string]string, len(oi.UserMetadata))
	for k, v := range oi.UserMetadata {
		md[strings.ToLower(k)] = v
	}
	return ObjectInfo{
		Key: key, Object: oi.Key, Size: oi.Size, ETag: oi.ETag, LastModified: oi.LastModified,
		ContentType: oi.ContentType, ContentEncoding: oi.ContentEncoding, Metadata: md,
	}
}

func (s *s3Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	obj := s.object(key)
	// GetObject is lazy: Stat on the returned object makes the request now,
	// so a missing object fails here rather than on the first Read.
	o, err := s.c.GetObject(ctx, s.bucket, obj, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.wrap(ctx, "open", obj, err)
	}
	if _, err := o.Stat(); err != nil {
		o.Close()
		return nil, s.notFound(ctx, s.wrap(ctx, "open", obj, err))
	}
	return &readCloser{o: o, s: s, ctx: ctx, obj: obj}, nil
}

type readCloser struct {
	o   *minio.Object
	s   *s3Store
	ctx context.Context
	obj string
}

func (r *readCloser) Read(p []byte) (int, error) {
	n, err := r.o.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.wrap(r.ctx, "read", r.obj, err)
	}
	return n, err
}

func (r *readCloser) Close() error { return r.o.Close() }

func (s *s3Store) Delete(ctx context.Context, key string) error {
	obj := s.object(key)
	if err := s.c.RemoveObject(ctx, s.bucket, obj, minio.RemoveObjectOptions{}); err != nil {
		return s.wrap(ctx, "delete", obj, err)
	}
	return nil
}

func (s *s3Store) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	obj := s.object(key)
	if ttl < time.Second || ttl > MaxPresignTTL {
		return "", &Error{Op: "presign", Object: obj, Kind: ErrInvalidConfig,
			msg: fmt.Sprintf("validity %s is not between 1s and 7 days", ttl)}
	}
	u, err := s.c.PresignedGetObject(ctx, s.bucket, obj, ttl, nil)
	if err != nil {
		return "", s.wrap(ctx, "presign", obj, err)
	}
	return u.String(), nil
}

func (s *s3Store) AbortIncomplete(ctx context.Context, prefix string) error {
	full := s.object(prefix)
	type upload struct{ key, id string }
	seen := map[string]upload{}
	// Ask with the prefix (what S3 does right), then list everything and
	// filter here (MinIO lists only an exact key's uploads when given a
	// prefix, and all recent ones without).
	lists := []string{full}
	if full != "" {
		lists = append(lists, "")
	}
	for _, p := range lists {
		for u := range s.c.ListIncompleteUploads(ctx, s.bucket, p, true) {
			if u.Err != nil {
				return s.wrap(ctx, "list incomplete uploads", full, u.Err)
			}
			if strings.HasPrefix(u.Key, full) {
				seen[u.UploadID] = upload{u.Key, u.UploadID}
			}
		}
	}
	for _, u := range seen {
		if err := s.core.AbortMultipartUpload(ctx, s.bucket, u.key, u.id); err != nil {
			var er minio.ErrorResponse
			if errors.As(err, &er) && er.Code == minio.NoSuchUpload {
				continue // completed or aborted meanwhile
			}
			return s.wrap(ctx, "abort incomplete upload", u.key, err)
		}
	}
	return nil
}

// notFound tells a missing bucket from a missing object: the answer to a
// HEAD request has no body, and S3 says 404 NoSuchKey for both.
func (s *s3Store) notFound(ctx context.Context, err error) error {
	var e *Error
	if !errors.As(err, &e) || e.Kind != ErrNotFound {
		return err
	}
	if ok, berr := s.c.BucketExists(ctx, s.bucket); berr == nil && !ok {
		e.Kind, e.Code = ErrBucketMissing, minio.NoSuchBucket
		e.msg = fmt.Sprintf("bucket %q", s.bucket)
	}
	return err
}

// Error is what a Store returns: the operation, the object, a kind
// (ErrUnreachable, ...; nil when unclassified) and the cause.
// errors.Is matches both the kind and the cause.
type Error struct {
	Op     string
	Object string
	Kind   error
	// Code is the S3 error code, when the server answered with one.
	Code string
	msg  string // scrubbed of secrets; what a tenant may read
	// detail is the cause's own text, scrubbed of secrets, for the
	// operator's logs only (Detail).
	detail string
	err    error
}

// Detail is the whole cause of err, scrubbed of secrets: for the operator's
// logs, never for status or Events (it may say connection refused versus
// timed out, or quote what the endpoint answered).
func Detail(err error) string {
	var e *Error
	if errors.As(err, &e) && e.detail != "" {
		return e.Error() + " (" + e.detail + ")"
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("objectstore: ")
	b.WriteString(e.Op)
	if e.Object != "" {
		b.WriteString(" ")
		b.WriteString(e.Object)
	}
	if e.Kind != nil {
		b.WriteString(": ")
		b.WriteString(e.Kind.Error())
	}
	if e.msg != "" {
		b.WriteString(": ")
		b.WriteString(e.msg)
	}
	return b.String()
}

func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.err != nil {
		errs = append(errs, e.err)
	}
	return errs
}

func (s *s3Store) scrub(msg string) string {
	for _, v := range s.secrets {
		msg = strings.ReplaceAll(msg, v, "[REDACTED]")
	}
	return msg
}

// wrap classifies err from a call made with ctx. Its message says what a
// ReportStore's owner (a tenant) needs and nothing about the network behind
// the endpoint: a connection refused, reset or timed out are all
// "unreachable" (the cause stays in the chain, for the operator's logs), and
// nothing the endpoint wrote is quoted but an S3 error code and message.
func (s *s3Store) wrap(ctx context.Context, op, obj string, err error) error {
	e := &Error{Op: op, Object: obj, err: err, msg: s.scrub(err.Error())}
	e.detail = e.msg
	if errors.Is(err, egress.ErrNotAllowed) {
		e.Kind = ErrDestinationNotAllowed
		var na *egress.NotAllowedError
		if errors.As(err, &na) {
			e.msg = na.Error()
		}
		return e
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) && er.Code != "" {
		e.Code = er.Code
		e.Kind = kindOfCode(er.Code, er.StatusCode)
		e.msg = s.scrub(describe(er))
		return e
	}
	if ctx.Err() != nil {
		// The caller gave up; the cause is the context, not the store.
		if !errors.Is(err, ctx.Err()) {
			e.err = errors.Join(ctx.Err(), err)
		}
		return e
	}
	if isNetwork(err) {
		e.Kind = ErrUnreachable
		e.msg = networkMessage(err)
		return e
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		// The HTTP exchange failed in a way that is not a network error:
		// the endpoint answered something that is not HTTP (an SSH or SMTP
		// banner, say). Its words are not repeated, and it looks like a
		// closed port: an open port must not be told from a closed one.
		e.Kind = ErrUnreachable
		e.msg = ""
	}
	return e
}

// networkMessage is the fixed text of a network error: TLS trust problems
// are named (the owner can fix them with a CA bundle); refused, reset,
// DNS and timeouts are not told apart.
func networkMessage(err error) string {
	var (
		ua  x509.UnknownAuthorityError
		ch  x509.CertificateInvalidError
		hn  x509.HostnameError
		cve *tls.CertificateVerificationError
		rhe tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &ua), errors.As(err, &ch), errors.As(err, &hn), errors.As(err, &cve):
		return "the endpoint's TLS certificate is not trusted or does not match its name (a private CA goes in the CA bundle)"
	case errors.As(err, &rhe):
		return "the endpoint does not speak TLS (a plain-HTTP endpoint needs http:// or insecure)"
	}
	return ""
}

func describe(er minio.ErrorResponse) string {
	msg := er.Message
	if msg == "" {
		msg = http.StatusText(er.StatusCode)
	}
	if er.Code != "" {
		msg += " (" + er.Code + ")"
	}
	return msg
}

// kindOfCode maps an S3 error code (or, failing that, an HTTP status) to a kind.
func kindOfCode(code string, status int) error {
	switch code {
	case minio.NoSuchBucket:
		return ErrBucketMissing
	case minio.NoSuchKey, "NotFound":
		return ErrNotFound
	case minio.AccessDenied, "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
		"InvalidToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem",
		"InvalidSecurity", "InvalidObjectState", "XMinioInvalidIAMCredentials", "XMinioAccessKeyDisabled":
		return ErrAccessDenied
	case "XMinioStorageFull", "QuotaExceeded", "XMinioAdminBucketQuotaExceeded", "EntityTooLarge",
		"StorageFull", "InsufficientStorage", "XMinioBucketQuotaExceeded", "ServiceQuotaExceeded":
		return ErrQuotaExceeded
	case "XMinioServerNotInitialized", "ServiceUnavailable", "SlowDown", "RequestTimeout":
		return ErrUnreachable
	}
	switch status {
	case http.StatusForbidden, http.StatusUnauthorized:
		return ErrAccessDenied
	case http.StatusInsufficientStorage, http.StatusRequestEntityTooLarge:
		return ErrQuotaExceeded
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return ErrUnreachable
	}
	return nil
}

// isNetwork reports whether err says the server could not be reached:
// refused, reset, DNS, timeout, TLS.
func isNetwork(err error) bool {
	var (
		ne   net.Error
		dns  *net.DNSError
		op   *net.OpError
		ua   x509.UnknownAuthorityError
		ch   x509.CertificateInvalidError
		hn   x509.HostnameError
		cve  *tls.CertificateVerificationError
		rhe  tls.RecordHeaderError
		uerr *url.Error
	)
	switch {
	case errors.As(err, &dns), errors.As(err, &op), errors.As(err, &ua), errors.As(err, &ch),
		errors.As(err, &hn), errors.As(err, &cve), errors.As(err, &rhe):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return true
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errors.As(err, &uerr) // the connection dropped mid-request
	}
	return strings.Contains(err.Error(), " is offline")
}
