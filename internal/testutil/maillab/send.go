package maillab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Mail is a message to send into the lab.
type Mail struct {
	From    string
	To      []string
	Subject string
	// Body is the text body; "" sends a line of its own.
	Body string
	// MessageID is the Message-ID header; NewMessageID's when empty.
	MessageID string
	// Headers are more header lines ("Name: value").
	Headers []string
	// SMTPUTF8 asks for SMTPUTF8 in MAIL FROM (when the server offers it).
	SMTPUTF8 bool
}

// Sent is what the SMTP server answered.
type Sent struct {
	MessageID string
	// Refused holds the recipients refused at RCPT TO, with the reply.
	Refused map[string]error
	// Err is the failure of the rest of the transaction (MAIL FROM, DATA,
	// the end of data: a milter's rejection shows here), nil when queued.
	Err error
}

// NewMessageID returns a fresh Message-ID in the lab's domain, naming tag.
func NewMessageID(tag string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "<maillab-" + tag + "-" + hex.EncodeToString(b[:]) + "@" + Domain + ">"
}

// The addresses the lab's clients claim (Postfix's XCLIENT, which the
// lab's smtpd grants loopback): mail from outside comes from
// OutsideIP, the organisation's users submit from UserIP. Without it every
// client would be 127.0.0.1, which Postfix, rspamd and mailtrace all take
// for the machine itself (a content filter's re-injection).
const (
	OutsideIP   = "203.0.113.25"
	OutsideName = "mail.remote.test"
	UserIP      = "198.51.100.7"
	UserName    = "laptop.lab.test"
)

// Send sends m to Postfix's smtpd (the MX) without authenticating, from
// OutsideIP: mail from outside.
func (l *Lab) Send(m Mail) Sent { return l.SendFrom(OutsideIP, OutsideName, m) }

// SendFrom sends m to Postfix's smtpd without authenticating, as client
// ip (reverse name name, "" for none); an empty ip sends from 127.0.0.1
// itself, as a program on the mail server would.
func (l *Lab) SendFrom(ip, name string, m Mail) Sent {
	return send(l.SMTP, client{ip: ip, name: name, proxy: l.proxied}, m)
}

// Submit sends m to the submission port from UserIP, authenticated as user
// (an address of Domain): mail from the organisation's users.
func (l *Lab) Submit(user string, m Mail) Sent {
	return send(l.Submission, client{ip: UserIP, name: UserName, user: user, pass: Password, proxy: l.proxied}, m)
}

type client struct {
	ip, name   string
	user, pass string
	// proxy: claim ip with a PROXY protocol (v1) header from ProxyFrom
	// instead of XCLIENT (an MTA without XCLIENT: Exim)
	proxy bool
}

// ProxyFrom is the loopback address the lab's clients connect from when
// they claim an address with a PROXY protocol header: the MTA requires
// the header from it only (Exim's hosts_proxy), so that a plain client on
// 127.0.0.1 (a program on the mail server) needs none.
const ProxyFrom = "127.0.0.2"

// send speaks SMTP itself (net/smtp has no XCLIENT): EHLO, XCLIENT, EHLO,
// AUTH PLAIN, MAIL (BODY=8BITMIME, and SMTPUTF8 when asked),
// RCPT per recipient, DATA.
func send(address string, cl client, m Mail) (s Sent) {
	if m.MessageID == "" {
		m.MessageID = NewMessageID("msg")
	}
	s.MessageID = m.MessageID
	d := net.Dialer{Timeout: 10 * time.Second}
	if cl.proxy && cl.ip != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ProxyFrom)}
	}
	conn, err := d.Dial("tcp", address)
	if err != nil {
		s.Err = err
		return s
	}
	defer conn.Close()
	if cl.proxy && cl.ip != "" {
		host, port, _ := net.SplitHostPort(address)
		if _, err := fmt.Fprintf(conn, "PROXY TCP4 %s %s 41234 %s\r\n", cl.ip, host, port); err != nil {
			s.Err = fmt.Errorf("PROXY: %w", err)
			return s
		}
	}
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
	tp := textproto.NewConn(conn)
	cmd := func(expect int, format string, args ...any) (string, error) {
		if format != "" {
			if err := tp.PrintfLine(format, args...); err != nil {
				return "", err
			}
		}
		code, msg, err := tp.ReadResponse(expect)
		if err != nil {
			return msg, err
		}
		return fmt.Sprintf("%d %s", code, msg), nil
	}
	helo := "client.remote.test"
	if cl.name != "" {
		helo = cl.name
	}
	if _, err := cmd(220, ""); err != nil {
		s.Err = fmt.Errorf("greeting: %w", err)
		return s
	}
	ext, err := cmd(250, "EHLO %s", helo)
	if err != nil {
		s.Err = fmt.Errorf("EHLO: %w", err)
		return s
	}
	if cl.ip != "" && !cl.proxy {
		if !strings.Contains(ext, "XCLIENT") {
			s.Err = errors.New("the server does not offer XCLIENT")
			return s
		}
		name := cl.name
		if name == "" {
			name = "[UNAVAILABLE]"
		}
		if _, err := cmd(220, "XCLIENT ADDR=%s NAME=%s HELO=%s", cl.ip, name, helo); err != nil {
			s.Err = fmt.Errorf("XCLIENT: %w", err)
			return s
		}
		if ext, err = cmd(250, "EHLO %s", helo); err != nil {
			s.Err = fmt.Errorf("EHLO after XCLIENT: %w", err)
			return s
		}
	}
	if cl.user != "" {
		cred := base64.StdEncoding.EncodeToString([]byte("\x00" + cl.user + "\x00" + cl.pass))
		if _, err := cmd(235, "AUTH PLAIN %s", cred); err != nil {
			s.Err = fmt.Errorf("AUTH: %w", err)
			return s
		}
	}
	params := " BODY=8BITMIME"
	if m.SMTPUTF8 && strings.Contains(ext, "SMTPUTF8") {
		params += " SMTPUTF8"
	}
	if _, err := cmd(250, "MAIL FROM:<%s>%s", m.From, params); err != nil {
		s.Err = fmt.Errorf("MAIL FROM: %w", err)
		return s
	}
	accepted := 0
	for _, to := range m.To {
		if _, err := cmd(250, "RCPT TO:<%s>", to); err != nil {
			if s.Refused == nil {
				s.Refused = map[string]error{}
			}
			s.Refused[to] = err
			continue
		}
		accepted++
	}
	if accepted == 0 {
		_, _ = cmd(221, "QUIT")
		return s
	}
	if _, err := cmd(354, "DATA"); err != nil {
		s.Err = fmt.Errorf("DATA: %w", err)
		return s
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\nDate: %s\r\n",
		m.From, strings.Join(m.To, ", "), m.Subject, m.MessageID, time.Now().UTC().Format(time.RFC1123Z))
	for _, h := range m.Headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	body := m.Body
	if body == "" {
		body = "A message of the mail lab."
	}
	b.WriteString(body)
	w := tp.DotWriter()
	if _, err := w.Write([]byte(b.String())); err != nil {
		s.Err = err
		return s
	}
	if err := w.Close(); err != nil {
		s.Err = err
		return s
	}
	if _, err := cmd(250, ""); err != nil {
		s.Err = fmt.Errorf("end of data: %w", err)
		return s
	}
	_, _ = cmd(221, "QUIT")
	return s
}

// Rows returns the store's rows for q (a Start of zero means an hour ago,
// an End of zero an hour from now).
func (l *Lab) Rows(ctx context.Context, q mailflow.Query) ([]mailflow.Row, error) {
	now := time.Now()
	if q.Start.IsZero() {
		q.Start = now.Add(-time.Hour)
	}
	if q.End.IsZero() {
		q.End = now.Add(time.Hour)
	}
	var rows []mailflow.Row
	var cur mailflow.Cursor
	for {
		p, err := l.Store.Trace(ctx, q, cur, 500)
		if err != nil {
			return nil, err
		}
		rows = append(rows, p.Rows...)
		if p.Next == "" {
			return rows, nil
		}
		cur = p.Next
	}
}

// probe sends one message through the whole lab and waits for its row:
// a broken link anywhere (Postfix, rspamd, Dovecot, rsyslog, TLS, the
// ingester, the store) fails here with every log, not in each scenario.
func (l *Lab) probe(t testing.TB) error {
	s := l.Send(Mail{From: "probe@" + RemoteDomain, To: []string{"alice@" + Domain}, Subject: "maillab probe", MessageID: NewMessageID("probe")})
	if s.Err != nil || s.Refused != nil {
		return fmt.Errorf("maillab: the probe message was not accepted: %v %v\n%s", s.Err, s.Refused, l.Logs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var last []mailflow.Row
	for {
		rows, err := l.Rows(ctx, mailflow.Query{MessageID: s.MessageID})
		if err == nil && len(rows) == 1 && rows[0].Status == mailflow.StatusDelivered {
			return nil
		}
		if err == nil {
			last = rows
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("maillab: the probe message's row did not reach the store as Delivered within 2 minutes (rows: %+v, error: %v)\n%s",
				last, errors.Join(err, ctx.Err()), l.Logs())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
