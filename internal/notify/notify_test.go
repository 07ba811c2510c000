package notify

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
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
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "down for maintenance") {
		t.Errorf("err = %v", err)
	}
}

// smtpServer is a tiny SMTP server on loopback: enough of RFC 5321 for
// net/smtp (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT).
type smtpServer struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []received
	wg   sync.WaitGroup
}

type received struct {
	from string
	to   []string
	data string
	auth string
}

func startSMTP(t *testing.T) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(c)
	_ = tp.PrintfLine("220 test ESMTP")
	var m received
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch {
		case cmd == "EHLO" || cmd == "HELO":
			_ = tp.PrintfLine("250-test\r\n250-AUTH PLAIN\r\n250 8BITMIME")
		case cmd == "AUTH":
			m.auth = line
			_ = tp.PrintfLine("235 ok")
		case strings.HasPrefix(strings.ToUpper(line), "MAIL FROM:"):
			m.from = strings.Trim(strings.Fields(line[len("MAIL FROM:"):])[0], "<>")
			_ = tp.PrintfLine("250 ok")
		case strings.HasPrefix(strings.ToUpper(line), "RCPT TO:"):
			m.to = append(m.to, strings.Trim(line[len("RCPT TO:"):], "<> "))
			_ = tp.PrintfLine("250 ok")
		case cmd == "DATA":
			_ = tp.PrintfLine("354 go on")
			b, err := io.ReadAll(tp.DotReader())
			if err != nil {
				return
			}
			m.data = string(b)
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			m = received{auth: m.auth}
			_ = tp.PrintfLine("250 queued")
		case cmd == "QUIT":
			_ = tp.PrintfLine("221 bye")
			return
		default:
			_ = tp.PrintfLine("250 ok")
		}
	}
}

// An email reaches a test SMTP server on loopback, authenticated, with the
// outcome, counts and report location in a readable body.
func TestEmailReachesTheRelay(t *testing.T) {
	srv := startSMTP(t)
	m := &Mailer{Config: SMTPConfig{Addr: srv.ln.Addr().String(), From: "mailtrace@example.com", Username: "u", Password: "p"}}
	subject, body := FormatEmail(testDoc())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Send(ctx, []string{"ops@example.com", "oncall@example.com"}, subject, body); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.msgs) != 1 {
		t.Fatalf("%d messages received", len(srv.msgs))
	}
	got := srv.msgs[0]
	if got.from != "mailtrace@example.com" || strings.Join(got.to, ",") != "ops@example.com,oncall@example.com" || !strings.HasPrefix(got.auth, "AUTH PLAIN") {
		t.Errorf("envelope from %q to %v auth %q", got.from, got.to, got.auth)
	}
	msg, err := textproto.NewReader(bufio.NewReader(strings.NewReader(got.data))).ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	if msg.Get("Subject") != "[mailtrace] mail/failed-weekly-29626980 succeeded: 3 matches" || msg.Get("To") != "ops@example.com, oncall@example.com" ||
		msg.Get("Message-Id") == "" || msg.Get("Date") == "" {
		t.Errorf("headers %v", msg)
	}
	i := strings.Index(got.data, "\r\n\r\n")
	text, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(got.data[i+4:])))
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
	srv := startSMTP(t)
	m := &Mailer{Config: SMTPConfig{Addr: srv.ln.Addr().String(), From: "mailtrace@example.com", StartTLS: true}}
	if err := m.Send(context.Background(), []string{"a@example.com"}, "s", "b"); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("a relay without STARTTLS was used: %v", err)
	}
}
