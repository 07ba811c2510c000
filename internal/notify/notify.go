// Package notify tells the outside world that a MessageTrace finished: a
// signed JSON webhook and an email through an SMTP relay.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mailtrace/mailtrace/internal/egress"
)

// Headers of a webhook request.
const (
	HeaderSignature = "X-Mailtrace-Signature"
	HeaderTimestamp = "X-Mailtrace-Timestamp"
	HeaderEvent     = "X-Mailtrace-Event"
	// HeaderDelivery is the same for every attempt of one notification, so a
	// receiver can drop a retried duplicate.
	HeaderDelivery = "X-Mailtrace-Delivery"
)

// EventTraceFinished is the X-Mailtrace-Event of a finished trace.
const EventTraceFinished = "trace.finished"

// Document is the JSON body of a webhook and the content of an email.
type Document struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Trace      TraceRef `json:"trace"`
	// Schedule is the MessageTraceSchedule that created the trace, if any.
	Schedule string `json:"schedule,omitempty"`
	// Outcome is Succeeded or Failed.
	Outcome string `json:"outcome"`
	// Reason and Message of the deciding condition.
	Reason         string           `json:"reason,omitempty"`
	Message        string           `json:"message,omitempty"`
	Start          *time.Time       `json:"start,omitempty"`
	End            *time.Time       `json:"end,omitempty"`
	CompletionTime *time.Time       `json:"completionTime,omitempty"`
	TotalMatches   int64            `json:"totalMatches"`
	Truncated      bool             `json:"truncated,omitempty"`
	Counts         map[string]int64 `json:"counts,omitempty"`
	// Report is the trace's status.report, as it is (bucket, key, ...).
	Report json.RawMessage `json:"report,omitempty"`
}

// TraceRef names the trace.
type TraceRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
}

// Sign returns the hex HMAC-SHA256 of "<timestamp>.<body>" under secret.
// Binding the timestamp into the signature lets a receiver refuse replays:
// it checks the signature, then that the timestamp is recent.
func Sign(secret []byte, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a request's signature and timestamp header values against
// secret, refusing timestamps further than tolerance from now. It is what a
// receiver does; the tests use it.
func Verify(secret []byte, signatureHeader, timestampHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestampHeader, 10, 64)
	if err != nil {
		return fmt.Errorf("bad %s %q", HeaderTimestamp, timestampHeader)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("timestamp %d is %s away from now: a replay or a wrong clock", ts, d)
	}
	sig, ok := strings.CutPrefix(signatureHeader, "sha256=")
	if !ok {
		return fmt.Errorf("bad %s %q: want sha256=<hex>", HeaderSignature, signatureHeader)
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("bad %s: %v", HeaderSignature, err)
	}
	want, _ := hex.DecodeString(Sign(secret, ts, body))
	if !hmac.Equal(got, want) {
		return errors.New("signature does not match")
	}
	return nil
}

// Webhook posts documents.
type Webhook struct {
	// Client sends the requests (default: a client with a 15s timeout).
	Client *http.Client
	// Now is the clock of the timestamp header (default time.Now).
	Now func() time.Time
	// UserAgent of the requests.
	UserAgent string
}

// Send POSTs doc to url, signed with secret when it is not empty. deliveryID
// is sent as X-Mailtrace-Delivery. Any status but 2xx is an error.
func (w *Webhook) Send(ctx context.Context, url string, secret []byte, deliveryID string, doc *Document) error {
	body, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderEvent, EventTraceFinished)
	req.Header.Set(HeaderDelivery, deliveryID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if len(secret) > 0 {
		req.Header.Set(HeaderSignature, "sha256="+Sign(secret, ts, body))
	}
	if w.UserAgent != "" {
		req.Header.Set("User-Agent", w.UserAgent)
	}
	c := w.Client
	if c == nil {
		c = &http.Client{Timeout: 15 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) {
			// url.Error names the URL, which may carry a token (a URL
			// from a Secret): keep only the cause.
			err = ue.Err
		}
		return &UnreachableError{err: err}
	}
	defer resp.Body.Close()
	// What the receiver said is never read back into errors (they reach a
	// tenant-readable status): only its status code. The body is drained,
	// bounded, so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return &StatusError{Code: resp.StatusCode}
	}
	return nil
}

// StatusError is a webhook's non-2xx answer: its code, and nothing the
// receiver wrote.
type StatusError struct{ Code int }

func (e *StatusError) Error() string {
	if t := http.StatusText(e.Code); t != "" {
		return fmt.Sprintf("webhook answered HTTP %d (%s)", e.Code, t)
	}
	return fmt.Sprintf("webhook answered HTTP %d", e.Code)
}

// UnreachableError: the request did not get an answer (DNS, connection,
// TLS, timeout, a refused destination). Error() says which of those only
// for a refused destination; Unwrap gives the cause for logs.
type UnreachableError struct{ err error }

func (e *UnreachableError) Error() string {
	var na *egress.NotAllowedError
	if errors.As(e.err, &na) {
		return na.Error()
	}
	return "webhook could not be reached (DNS, connection, TLS or timeout)"
}

func (e *UnreachableError) Unwrap() error { return e.err }
