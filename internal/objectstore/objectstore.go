// Package objectstore is the object-store port: where CSV reports go. Its one
// adapter (New) speaks the S3 API through minio-go, so it works with AWS S3,
// MinIO, Ceph RGW, Cloudflare R2, GCS's S3 interoperability and the like.
// Every adapter passes the conformance suite in package objectstoretest.
//
// Keys. Every key given to a Store is relative to Config.Prefix: the object
// is stored under "<prefix>/<key>" in the bucket (just "<key>" when the prefix
// is empty). UploadInfo.Object and ObjectInfo.Object give the full name.
//
// Errors are wrapped so callers can tell why an operation failed with
// errors.Is: ErrUnreachable, ErrBucketMissing, ErrAccessDenied,
// ErrQuotaExceeded, ErrNotFound; Reason maps any error to a stable CamelCase
// condition reason. Error messages never contain the secret key or the
// session token.
package objectstore

import (
	"context"
	"errors"
	"io"
	"net"
	"time"
)

// DefaultPartSize is the part size of a streaming upload when Config.PartSize
// and UploadOptions.PartSize are zero. One part is buffered in memory per
// upload, so it bounds an upload's memory; with S3's limit of 10,000 parts it
// allows objects of up to about 156 GiB.
const DefaultPartSize int64 = 16 << 20

// MinPartSize is the smallest part size S3 accepts (for every part but the last).
const MinPartSize int64 = 5 << 20

// Store is the object-store port.
type Store interface {
	// Check verifies that the store is reachable, the bucket exists and the
	// credentials may write: it puts and deletes a small probe object under
	// the prefix.
	Check(ctx context.Context) error
	// Upload streams r to key as a multipart upload of fixed-size parts,
	// without knowing the total size. The object becomes visible only when
	// the upload completes; when r fails or ctx is cancelled the multipart
	// upload is aborted and nothing is visible. An existing object under key
	// is replaced (so a retry with the same key is safe).
	Upload(ctx context.Context, key string, r io.Reader, opts UploadOptions) (UploadInfo, error)
	// Stat describes the object under key (ErrNotFound when there is none).
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Open returns the object's content (ErrNotFound when there is none).
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes the object under key; deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// PresignGet returns a URL that lets anyone holding it GET the object
	// for ttl (at most 7 days, the S3 limit).
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
	// AbortIncomplete aborts every incomplete multipart upload whose key
	// starts with prefix (relative, like every key), including uploads still
	// in progress: call it for a key nobody is writing, e.g. before retrying
	// a report under its deterministic key. Some servers (MinIO) only list
	// the uploads of an exact key, or those started since they last
	// restarted, so pass the exact key when you know it.
	AbortIncomplete(ctx context.Context, prefix string) error
}

// UploadOptions describe an object being uploaded.
type UploadOptions struct {
	ContentType     string
	ContentEncoding string
	// ContentDisposition, e.g. `attachment; filename="messagetrace.csv"`.
	ContentDisposition string
	// Metadata is stored as user metadata (x-amz-meta-*). Keys are
	// case-insensitive and come back lower-cased from Stat; values should be
	// ASCII.
	Metadata map[string]string
	// PartSize overrides Config.PartSize for this upload (at least MinPartSize).
	PartSize int64
}

// UploadInfo describes a completed upload.
type UploadInfo struct {
	Bucket string
	// Key is the key as given to Upload; Object is the full object name in
	// the bucket (with the prefix).
	Key, Object string
	ETag        string
	VersionID   string
	// Size is the number of bytes uploaded.
	Size int64
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key, Object     string
	Size            int64
	ETag            string
	LastModified    time.Time
	ContentType     string
	ContentEncoding string
	// Metadata is the user metadata, keys lower-cased.
	Metadata map[string]string
}

// Config says where the store is and how to reach it.
type Config struct {
	// Endpoint is host[:port] or a URL (http:// or https://). Empty means AWS
	// S3 (s3.amazonaws.com).
	Endpoint string
	// Bucket must exist; the store never creates it.
	Bucket string
	// Prefix is prepended to every key ("reports" stores key k as "reports/k").
	Prefix string
	// Region of the bucket; when empty it is looked up (or us-east-1).
	Region string
	// Insecure means plain HTTP. An http:// endpoint implies it.
	Insecure bool
	// CABundle holds PEM certificates trusted in addition to the system's.
	CABundle []byte
	// AccessKey, SecretKey and SessionToken are static credentials. When
	// AccessKey is empty the ambient ones are used: AWS_* environment
	// variables, then the pod's web identity (IRSA) or instance profile.
	AccessKey, SecretKey, SessionToken string
	// SSE asks for server-side encryption: "" (none, the bucket's default
	// applies), "AES256" (SSE-S3) or "aws:kms:<key-id>" (SSE-KMS).
	SSE string
	// PartSize of streaming uploads; DefaultPartSize when zero, at least MinPartSize.
	PartSize int64
	// UploadBuffers is how many parts of a streaming upload are held at
	// once: while one is uploaded the next is filled, so producing the
	// content and sending it overlap. 0 or 1: one part, filled then sent
	// (half the memory, about the sum of both times). Memory is
	// UploadBuffers * PartSize per upload.
	UploadBuffers int
	// MaxRetries of one request on transient errors; minio-go's default (10)
	// when zero, 1 disables retries.
	MaxRetries int
	// DialContext, when set, makes every connection (egress.Guard's, which
	// refuses internal addresses that are not granted). Environment proxies
	// are then not used.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Error kinds, checkable with errors.Is on any error a Store returns.
var (
	// ErrUnreachable: connection refused, DNS failure, timeout, TLS failure.
	ErrUnreachable = errors.New("object store unreachable")
	// ErrBucketMissing: the bucket does not exist.
	ErrBucketMissing = errors.New("bucket does not exist")
	// ErrAccessDenied: bad access key or secret, or no permission.
	ErrAccessDenied = errors.New("access denied")
	// ErrQuotaExceeded: the server is full, a quota is reached, or the object is too large.
	ErrQuotaExceeded = errors.New("storage quota exceeded")
	// ErrNotFound: no object under the key.
	ErrNotFound = errors.New("object not found")
	// ErrInvalidConfig: the Config cannot be used.
	ErrInvalidConfig = errors.New("invalid object store configuration")
	// ErrDestinationNotAllowed: the endpoint is an internal address that is not granted.
	ErrDestinationNotAllowed = errors.New("destination not allowed")
)

// Condition reasons returned by Reason: stable CamelCase, for Kubernetes conditions.
const (
	ReasonUnreachable      = "StoreUnreachable"
	ReasonBucketMissing    = "BucketMissing"
	ReasonAccessDenied     = "AccessDenied"
	ReasonQuotaExceeded    = "QuotaExceeded"
	ReasonNotFound         = "ObjectMissing"
	ReasonInvalidConfig    = "InvalidConfig"
	ReasonNotAllowed       = "DestinationNotAllowed"
	ReasonUploadFailed     = "UploadFailed"
	ReasonCanceled         = "Canceled"
	ReasonDeadlineExceeded = "DeadlineExceeded"
)

// Reason returns the condition reason for err ("" for nil): one of the
// Reason* constants, UploadFailed for anything unclassified.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrInvalidConfig):
		return ReasonInvalidConfig
	case errors.Is(err, ErrDestinationNotAllowed):
		return ReasonNotAllowed
	case errors.Is(err, ErrBucketMissing):
		return ReasonBucketMissing
	case errors.Is(err, ErrAccessDenied):
		return ReasonAccessDenied
	case errors.Is(err, ErrQuotaExceeded):
		return ReasonQuotaExceeded
	case errors.Is(err, ErrNotFound):
		return ReasonNotFound
	case errors.Is(err, context.Canceled):
		return ReasonCanceled
	case errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrUnreachable):
		return ReasonDeadlineExceeded
	case errors.Is(err, ErrUnreachable):
		return ReasonUnreachable
	}
	return ReasonUploadFailed
}
