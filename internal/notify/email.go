package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"sort"
	"strings"
	"time"
)

// SMTPConfig is the relay configured at install.
type SMTPConfig struct {
	// Addr is host:port of the relay.
	Addr string
	// From is the envelope sender and From header.
	From string
	// Username and Password, when set, authenticate with AUTH PLAIN (which
	// net/smtp only sends over TLS or to localhost).
	Username, Password string
	// StartTLS requires STARTTLS before anything else is sent.
	StartTLS bool
	// TLSConfig for STARTTLS (default: verify the relay's host name).
	TLSConfig *tls.Config
	// HelloName is the EHLO name (default "localhost").
	HelloName string
	// Timeout bounds one delivery (default 30s).
	Timeout time.Duration
}

// Mailer sends through an SMTP relay.
type Mailer struct {
	Config SMTPConfig
	// Now dates the message (default time.Now).
	Now func() time.Time
}

// Send delivers one message to every address in to.
func (m *Mailer) Send(ctx context.Context, to []string, subject, body string) error {
	c := m.Config
	if c.Addr == "" || c.From == "" {
		return errors.New("no SMTP relay configured (manager flags --smtp-relay and --smtp-from)")
	}
	if len(to) == 0 {
		return errors.New("no recipients")
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("smtp relay %s: %w", c.Addr, err)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	host, _, _ := net.SplitHostPort(c.Addr)
	cl, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp relay %s: %w", c.Addr, err)
	}
	defer cl.Close()
	hello := c.HelloName
	if hello == "" {
		hello = "localhost"
	}
	if err := cl.Hello(hello); err != nil {
		return err
	}
	if c.StartTLS {
		if ok, _ := cl.Extension("STARTTLS"); !ok {
			return fmt.Errorf("smtp relay %s does not offer STARTTLS, which --smtp-starttls requires", c.Addr)
		}
		tc := c.TLSConfig
		if tc == nil {
			tc = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		if err := cl.StartTLS(tc); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if c.Username != "" {
		if err := cl.Auth(smtp.PlainAuth("", c.Username, c.Password, host)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := cl.Mail(c.From); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, rcpt := range to {
		if err := cl.Rcpt(rcpt); err != nil {
			return fmt.Errorf("RCPT TO %s: %w", rcpt, err)
		}
	}
	wc, err := cl.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := wc.Write(m.message(to, subject, body)); err != nil {
		return err
	}
	if err := wc.Close(); err != nil {
		return fmt.Errorf("message refused: %w", err)
	}
	return cl.Quit()
}

func (m *Mailer) message(to []string, subject, body string) []byte {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	domain := "mailtrace.local"
	if at := strings.LastIndex(m.Config.From, "@"); at >= 0 {
		domain = m.Config.From[at+1:]
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", m.Config.From)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(to, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(id), domain)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n")
	b.WriteString("Auto-Submitted: auto-generated\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n")))
	_ = qp.Close()
	return b.Bytes()
}

// FormatEmail renders the subject and plain-text body of doc.
func FormatEmail(doc *Document) (subject, body string) {
	subject = fmt.Sprintf("[mailtrace] %s/%s %s: %d matches", doc.Trace.Namespace, doc.Trace.Name, strings.ToLower(doc.Outcome), doc.TotalMatches)
	if doc.Outcome != "Succeeded" {
		subject = fmt.Sprintf("[mailtrace] %s/%s failed: %s", doc.Trace.Namespace, doc.Trace.Name, doc.Reason)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "MessageTrace %s/%s %s (%s).\n", doc.Trace.Namespace, doc.Trace.Name, strings.ToLower(doc.Outcome), doc.Reason)
	if doc.Message != "" {
		fmt.Fprintf(&b, "%s\n", doc.Message)
	}
	if doc.Schedule != "" {
		fmt.Fprintf(&b, "Schedule: %s\n", doc.Schedule)
	}
	if doc.Start != nil && doc.End != nil {
		fmt.Fprintf(&b, "Range: %s to %s (UTC)\n", doc.Start.UTC().Format(time.RFC3339), doc.End.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "Matches: %d", doc.TotalMatches)
	if doc.Truncated {
		b.WriteString(" (status holds the newest; the report has them all)")
	}
	b.WriteString("\n")
	keys := make([]string, 0, len(doc.Counts))
	for k := range doc.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-15s %d\n", k+":", doc.Counts[k])
	}
	if len(doc.Report) > 0 {
		fmt.Fprintf(&b, "Report: %s\n", reportLocation(doc.Report))
	}
	fmt.Fprintf(&b, "\nkubectl get messagetrace -n %s %s -o yaml\n", doc.Trace.Namespace, doc.Trace.Name)
	return subject, b.String()
}
