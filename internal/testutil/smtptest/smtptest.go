// Package smtptest is a tiny SMTP server on loopback for tests: enough of
// RFC 5321 for net/smtp (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT). It
// accepts everything and keeps what it received.
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

	ln   net.Listener
	mu   sync.Mutex
	msgs []Message
	wg   sync.WaitGroup
	got  chan struct{}
}

// Start starts a server on 127.0.0.1.
func Start(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), ln: ln, got: make(chan struct{}, 100)}
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
			_ = tp.PrintfLine("250-smtptest\r\n250-AUTH PLAIN\r\n250 8BITMIME")
		case strings.HasPrefix(upper, "AUTH"):
			m.Auth = line
			_ = tp.PrintfLine("235 2.7.0 ok")
		case strings.HasPrefix(upper, "MAIL FROM:"):
			m.From = strings.Trim(strings.Fields(line[len("MAIL FROM:"):])[0], "<>")
			_ = tp.PrintfLine("250 2.1.0 ok")
		case strings.HasPrefix(upper, "RCPT TO:"):
			m.To = append(m.To, strings.Trim(strings.Fields(line[len("RCPT TO:"):])[0], "<>"))
			_ = tp.PrintfLine("250 2.1.5 ok")
		case upper == "DATA":
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
