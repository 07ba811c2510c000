// Package smtptest is a tiny SMTP server on loopback for tests: enough of
// RFC 5321 for net/smtp and Postfix's SMTP client (EHLO, AUTH PLAIN, MAIL,
// RCPT, DATA, RSET, QUIT). It accepts everything and keeps what it received,
// unless Options.RcptReply answers a recipient otherwise (a scripted remote
// MX that defers or rejects per recipient).
package smtptest

import (
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// Message is one received message.
type Message struct {
	From string
	To   []string
	// Data is the message as sent (headers and body, CRLF line ends, dot-unstuffed).
	Data string
	// Auth is the AUTH command line of the session, if any.
	Auth string
}

// Server is a running server; it stops when the test ends.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string

	ln    net.Listener
	opts  Options
	mu    sync.Mutex
	msgs  []Message
	rcpts []Rcpt
	wg    sync.WaitGroup
	got   chan struct{}
}

// Options script the server's answers.
type Options struct {
	// RcptReply answers RCPT TO for one recipient (the address without
	// angle brackets): "" accepts it with 250; anything else is sent as
	// the reply line, e.g. "450 4.2.1 mailbox busy" or
	// "550 5.1.1 <x@example.com>: no such user". Nil accepts everyone.
	RcptReply func(rcpt string) string
}

// Rcpt is one RCPT TO the server answered.
type Rcpt struct {
	Addr  string
	Reply string // the reply line sent
}

// Start starts a server on 127.0.0.1 that accepts everything.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts a server on 127.0.0.1 that answers as o says.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), ln: ln, opts: o, got: make(chan struct{}, 100)}
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

// Messages returns what was received so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Rcpts returns every RCPT TO answered so far, with its reply.
func (s *Server) Rcpts() []Rcpt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Rcpt(nil), s.rcpts...)
}

// Wait waits up to timeout for n messages in all and returns them.
func (s *Server) Wait(n int, timeout time.Duration) []Message {
	deadline := time.After(timeout)
	for {
		if m := s.Messages(); len(m) >= n {
			return m
		}
		select {
		case <-s.got:
		case <-deadline:
			return s.Messages()
		}
	}
}

func (s *Server) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(c)
	_ = tp.PrintfLine("220 smtptest ESMTP")
	var m Message
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		upper := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(upper, "EHLO") || strings.HasPrefix(upper, "HELO"):
			_ = tp.PrintfLine("250-smtptest\r\n250-AUTH PLAIN\r\n250-SMTPUTF8\r\n250 8BITMIME")
		case strings.HasPrefix(upper, "AUTH"):
			m.Auth = line
			_ = tp.PrintfLine("235 2.7.0 ok")
		case strings.HasPrefix(upper, "MAIL FROM:"):
			m.From = strings.Trim(strings.Fields(line[len("MAIL FROM:"):])[0], "<>")
			_ = tp.PrintfLine("250 2.1.0 ok")
		case strings.HasPrefix(upper, "RCPT TO:"):
			to := strings.Trim(strings.Fields(line[len("RCPT TO:"):])[0], "<>")
			reply := ""
			if s.opts.RcptReply != nil {
				reply = s.opts.RcptReply(to)
			}
			if reply == "" {
				reply = "250 2.1.5 ok"
				m.To = append(m.To, to)
			}
			s.mu.Lock()
			s.rcpts = append(s.rcpts, Rcpt{Addr: to, Reply: reply})
			s.mu.Unlock()
			_ = tp.PrintfLine("%s", reply)
		case upper == "RSET":
			m = Message{Auth: m.Auth}
			_ = tp.PrintfLine("250 2.0.0 ok")
		case upper == "DATA":
			if len(m.To) == 0 {
				_ = tp.PrintfLine("554 5.5.1 no valid recipients")
				continue
			}
			_ = tp.PrintfLine("354 go on")
			b, err := io.ReadAll(tp.DotReader())
			if err != nil {
				return
			}
			m.Data = strings.ReplaceAll(string(b), "\n", "\r\n")
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			select {
			case s.got <- struct{}{}:
			default:
			}
			m = Message{Auth: m.Auth}
			_ = tp.PrintfLine("250 2.0.0 queued")
		case upper == "QUIT":
			_ = tp.PrintfLine("221 2.0.0 bye")
			return
		default:
			_ = tp.PrintfLine("250 ok")
		}
	}
}
