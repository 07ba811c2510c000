package notify

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/testutil/smtptest"
)

var (
	start = time.Date(2026, 5, 1, 6, 0, 0, 0, time.UTC)
	end   = start.Add(24 * time.Hour)
)

func testDoc() *Document {
	return &Document{
		APIVersion: "mailtrace.io/v1alpha1", Kind: "MessageTraceNotification",
		Trace:    TraceRef{Namespace: "mail", Name: "failed-weekly-29626980", UID: "1234"},
		Schedule: "failed-weekly", Outcome: "Succeeded", Reason: "Completed", Message: "3 matches, all shown",
		Start: &start, End: &end, TotalMatches: 3, Counts: map[string]int64{"failed": 2, "delivered": 1},
		Report: json.RawMessage(`{"bucket":"reports","key":"mail/failed-weekly-29626980/messagetrace.csv","phase":"Completed","rows":3}`),
	}
}

// The receiver (an httptest server on loopback) checks the signature over
// the body and the timestamp with its own copy of the secret; a replayed
// (old) request or a wrong secret fails.
func TestWebhookIsSignedAndVerifiable(t *testing.T) {
	secret := []byte("s3cret")
	type got struct {
		header http.Header
		body   []byte
	}
	ch := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- got{r.Header.Clone(), b}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	now := time.Unix(1777615200, 0)
	w := &Webhook{Client: srv.Client(), Now: func() time.Time { return now }}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Send(ctx, srv.URL, secret, "uid-1", testDoc()); err != nil {
		t.Fatal(err)
	}
	g := <-ch
	if err := Verify(secret, g.header.Get(HeaderSignature), g.header.Get(HeaderTimestamp), g.body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("the receiver cannot verify the request: %v", err)
	}
	if err := Verify([]byte("wrong"), g.header.Get(HeaderSignature), g.header.Get(HeaderTimestamp), g.body, now, 5*time.Minute); err == nil {
		t.Error("a wrong secret verified")
	}
	if err := Verify(secret, g.header.Get(HeaderSignature), g.header.Get(HeaderTimestamp), g.body, now.Add(time.Hour), 5*time.Minute); err == nil {
		t.Error("a replay an hour later verified")
	}
	tampered := append([]byte(nil), g.body...)
	tampered[len(tampered)-2] ^= 1
	if err := Verify(secret, g.header.Get(HeaderSignature), g.header.Get(HeaderTimestamp), tampered, now, 5*time.Minute); err == nil {
		t.Error("a tampered body verified")
	}
	if g.header.Get(HeaderDelivery) != "uid-1" || g.header.Get(HeaderEvent) != EventTraceFinished || g.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", g.header)
	}
	var doc Document
	if err := json.Unmarshal(g.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Trace.Name != "failed-weekly-29626980" || doc.Outcome != "Succeeded" || doc.TotalMatches != 3 || doc.Counts["failed"] != 2 ||
		!doc.Start.Equal(start) || !strings.Contains(string(doc.Report), `"bucket":"reports"`) {
		t.Errorf("document %+v", doc)
	}
}

func TestWebhookErrorStatusIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	err := (&Webhook{Client: srv.Client()}).Send(context.Background(), srv.URL, nil, "x", testDoc())
	// The code is said; what the receiver wrote is not (it would reach a
	// tenant-readable status: an internal service's reply, say).
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 503 || err.Error() != "webhook answered HTTP 503 (Service Unavailable)" {
		t.Errorf("err = %v", err)
	}
}

// A webhook that cannot be reached says so in fixed words: refused, reset
// and timed out look the same, and the URL (which may hold a token) is not
// in the message.
func TestWebhookUnreachableSaysNothingMore(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // now refused
	err = (&Webhook{}).Send(context.Background(), "http://"+addr+"/token-abc123", nil, "x", testDoc())
	var ue *UnreachableError
	if !errors.As(err, &ue) || strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "token-abc123") {
		t.Errorf("err = %v", err)
	}
	if !strings.Contains(errors.Unwrap(err).Error(), "refused") {
		t.Errorf("the cause, for logs, is lost: %v", errors.Unwrap(err))
	}
}

// An email reaches a test SMTP server on loopback, authenticated, with the
// outcome, counts and report location in a readable body.
func TestEmailReachesTheRelay(t *testing.T) {
	srv := smtptest.Start(t)
	m := &Mailer{Config: SMTPConfig{Addr: srv.Addr, From: "mailtrace@example.com", Username: "u", Password: "p"}}
	subject, body := FormatEmail(testDoc())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Send(ctx, []string{"ops@example.com", "oncall@example.com"}, subject, body); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages received", len(msgs))
	}
	got := msgs[0]
	if got.From != "mailtrace@example.com" || strings.Join(got.To, ",") != "ops@example.com,oncall@example.com" || !strings.HasPrefix(got.Auth, "AUTH PLAIN") {
		t.Errorf("envelope from %q to %v auth %q", got.From, got.To, got.Auth)
	}
	msg, err := textproto.NewReader(bufio.NewReader(strings.NewReader(got.Data))).ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	if msg.Get("Subject") != "[mailtrace] mail/failed-weekly-29626980 succeeded: 3 matches" || msg.Get("To") != "ops@example.com, oncall@example.com" ||
		msg.Get("Message-Id") == "" || msg.Get("Date") == "" {
		t.Errorf("headers %v", msg)
	}
	i := strings.Index(got.Data, "\r\n\r\n")
	text, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(got.Data[i+4:])))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MessageTrace mail/failed-weekly-29626980 succeeded (Completed)", "Schedule: failed-weekly",
		"Range: 2026-05-01T06:00:00Z to 2026-05-02T06:00:00Z", "Matches: 3", "failed:         2",
		"Report: s3://reports/mail/failed-weekly-29626980/messagetrace.csv (Completed, 3 rows)"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("body lacks %q:\n%s", want, text)
		}
	}
}

func TestEmailWithoutRelayOrRefusedStartTLSFails(t *testing.T) {
	if err := (&Mailer{}).Send(context.Background(), []string{"a@example.com"}, "s", "b"); err == nil || !strings.Contains(err.Error(), "--smtp-relay") {
		t.Errorf("err = %v", err)
	}
	srv := smtptest.Start(t)
	m := &Mailer{Config: SMTPConfig{Addr: srv.Addr, From: "mailtrace@example.com", StartTLS: true}}
	if err := m.Send(context.Background(), []string{"a@example.com"}, "s", "b"); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("a relay without STARTTLS was used: %v", err)
	}
}
