package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
)

// Syslog over TCP: who gets a connection, and for how long.
//
// A connection is counted against MaxConnections only once its TLS
// handshake is done; handshakes in flight have their own, smaller budget
// (MaxHandshakes, each bounded by handshakeTimeout), and one address holds
// at most MaxConnectionsPerIP connections, handshaking or open. So
// connections that never start a handshake, or a flood of them from one
// place, cannot lock out a sender with a valid certificate. An open
// connection is closed after IdleTimeout without a byte, or when a frame,
// once begun, is not complete within FrameTimeout.

// headerTimeout bounds the reading of an HTTP request's headers.
const headerTimeout = 10 * time.Second

// orDefault: 0 is def, a negative duration is none (0).
func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

type tcpServer struct {
	s          *Server
	p          *Pipeline
	ln         net.Listener
	tls        *tls.Config // nil: plain TCP
	transport  string
	mu         sync.Mutex
	conns      map[net.Conn]bool
	perIP      map[string]int
	handshakes int // TLS handshakes in flight
	open       int // connections past their handshake
	closing    bool
	wg         sync.WaitGroup
	// drainBy (Unix nanoseconds; 0: not stopping): at a stop the open
	// connections are read until then, not cut at once
	drainBy atomic.Int64
}

// shutdownDrain is how long a stop goes on reading the open syslog
// connections: what a sender wrote before the stop, and what is still in
// the socket's buffer because the reader waited for the store or the
// write-ahead log, is taken rather than lost with the connection.
const shutdownDrain = 2 * time.Second

func remoteIP(c net.Conn) string {
	a := c.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(a); err == nil {
		return h
	}
	return a
}

func (t *tcpServer) serve(ctx context.Context) {
	defer t.wg.Wait()
	o := &t.s.o
	for {
		c, err := t.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return
		}
		ip := remoteIP(c)
		t.mu.Lock()
		if t.closing {
			t.mu.Unlock()
			_ = c.Close()
			return
		}
		reason, cause := "", ""
		switch {
		case t.perIP[ip] >= o.MaxConnectionsPerIP:
			reason, cause = ReasonTooManyFromIP, fmt.Sprintf("%d connections from %s (--max-connections-per-ip)", o.MaxConnectionsPerIP, ip)
		case t.tls != nil && t.handshakes >= o.MaxHandshakes:
			reason, cause = ReasonTooManyHandshakes, fmt.Sprintf("%d TLS handshakes in flight (--max-handshakes)", o.MaxHandshakes)
		case t.tls == nil && t.open >= o.MaxConnections:
			reason, cause = ReasonTooManyConns, fmt.Sprintf("%d connections open", o.MaxConnections)
		}
		if reason != "" {
			t.mu.Unlock()
			t.p.Refused(reason, t.transport, c.RemoteAddr().String(), cause)
			_ = c.Close()
			continue
		}
		t.perIP[ip]++
		if t.tls != nil {
			t.handshakes++
		} else {
			t.open++
		}
		t.conns[c] = true
		t.wg.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.wg.Done()
			defer func() {
				t.mu.Lock()
				delete(t.conns, c)
				if t.perIP[ip]--; t.perIP[ip] <= 0 {
					delete(t.perIP, ip)
				}
				t.mu.Unlock()
				_ = c.Close()
			}()
			conn := c
			if t.tls != nil {
				tc := tls.Server(c, t.tls)
				ok := t.s.handshake(ctx, t.p, tc, t.transport)
				t.mu.Lock()
				t.handshakes--
				if ok && t.open >= o.MaxConnections {
					ok = false
					defer t.p.Refused(ReasonTooManyConns, t.transport, c.RemoteAddr().String(), fmt.Sprintf("%d connections open", o.MaxConnections))
				}
				if ok {
					t.open++
				}
				t.mu.Unlock()
				if !ok {
					return
				}
				conn = tc
			}
			defer func() { t.mu.Lock(); t.open--; t.mu.Unlock() }()
			t.s.readStream(ctx, t.p, conn, t.transport, &t.drainBy)
		}()
	}
}

// close stops accepting and gives the open connections shutdownDrain to
// be read (handshakes in flight end then too); their reader goroutines
// then hand over what they read and close them.
func (t *tcpServer) close() {
	by := time.Now().Add(shutdownDrain)
	t.mu.Lock()
	t.closing = true
	t.drainBy.Store(by.UnixNano())
	for c := range t.conns {
		_ = c.SetReadDeadline(by)
	}
	t.mu.Unlock()
	_ = t.ln.Close()
}

// deadlineConn sets a connection's read deadline before each read: the
// idle timeout between frames, the frame timeout (from its first byte)
// within one.
type deadlineConn struct {
	net.Conn
	idle, frame time.Duration
	began       time.Time     // zero: between frames
	drainBy     *atomic.Int64 // a stop's deadline (see tcpServer.drainBy)
}

func (d *deadlineConn) Read(b []byte) (int, error) {
	var dl time.Time
	switch {
	case d.began.IsZero() && d.idle > 0:
		dl = time.Now().Add(d.idle)
	case !d.began.IsZero() && d.frame > 0:
		dl = d.began.Add(d.frame)
	}
	if by := d.draining(); !by.IsZero() && (dl.IsZero() || by.Before(dl)) {
		dl = by
	}
	_ = d.Conn.SetReadDeadline(dl)
	n, err := d.Conn.Read(b)
	if n > 0 && d.began.IsZero() {
		d.began = time.Now()
	}
	return n, err
}

func (d *deadlineConn) draining() time.Time {
	if d.drainBy == nil {
		return time.Time{}
	}
	if v := d.drainBy.Load(); v != 0 {
		return time.Unix(0, v)
	}
	return time.Time{}
}

// readStream reads syslog frames from one connection (or file) until it
// ends, or until drainBy once that is set.
func (s *Server) readStream(ctx context.Context, p *Pipeline, r io.Reader, transport string, drainBy *atomic.Int64) {
	var dc *deadlineConn
	if c, ok := r.(net.Conn); ok && (s.o.IdleTimeout > 0 || s.o.FrameTimeout > 0 || drainBy != nil) {
		dc = &deadlineConn{Conn: c, idle: s.o.IdleTimeout, frame: s.o.FrameTimeout, drainBy: drainBy}
		r = dc
	}
	d := syslog.NewDecoder(r, s.o.MaxLineBytes)
	lim := s.newLimiter()
	msgs := make([]syslog.Message, 0, chunkLines)
	size := 0
	maxLines := chunkLines
	if p.wal != nil {
		// a chunk waits for an fsync: fewer, larger ones (chunkBytes
		// still bounds them)
		maxLines = walChunkLines
	}
	flush := func() bool {
		if len(msgs) == 0 {
			return true
		}
		_ = waitLines(s.unthrottled, lim, len(msgs)) // at shutdown: no more waiting
		// With a write-ahead log Submit returns once these lines are on
		// disk, and nothing more is read before: a line read off the
		// connection is kept. When the log cannot take them (full, a
		// failing disk) nothing more is read until it can.
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
			err := p.Submit(ctx, transport, msgs)
			if err == nil {
				break
			}
			if !Retryable(err) {
				return false
			}
			select {
			case <-time.After(backoff):
			case <-s.unthrottled.Done(): // shutting down: these lines are lost
				return false
			}
		}
		msgs, size = make([]syslog.Message, 0, chunkLines), 0
		return true
	}
	for {
		if dc != nil {
			// a frame whose bytes are here has begun; otherwise the
			// connection is idle until its next byte
			dc.began = time.Time{}
			if d.Buffered() {
				dc.began = time.Now()
			}
		}
		frame, drop, err := d.Next()
		if drop != "" {
			s.droppedFrame(p, string(drop), transport, d.DroppedBytes(), d.DroppedSample())
		} else if frame != nil {
			msgs = append(msgs, syslog.ParseFrame(string(frame)))
			size += len(frame)
		}
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded) && dc != nil && dc.draining().IsZero():
				reason := ReasonIdle
				if !dc.began.IsZero() {
					reason = ReasonSlowFrame
				}
				s.cut(p, reason, transport, dc.RemoteAddr().String())
			case !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed):
				s.log.V(1).Info("syslog connection ended", "transport", transport, "error", err.Error())
			}
			flush()
			return
		}
		if len(msgs) >= maxLines || size >= chunkBytes || !d.Buffered() {
			if !flush() {
				return
			}
		}
	}
}

// limitMetrics count what the listeners' limits drop and cut.
type limitMetrics struct {
	DroppedBytes *prometheus.CounterVec // by reason
	Cut          *prometheus.CounterVec // by reason and transport
}

func newLimitMetrics(reg prometheus.Registerer) *limitMetrics {
	m := &limitMetrics{
		DroppedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailtrace_ingest_dropped_bytes_total",
			Help: "Bytes of frames, lines and records dropped before the correlator, by reason (the lines are in mailtrace_ingest_lines_not_understood_total).",
		}, []string{"reason"}),
		Cut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailtrace_ingest_connections_cut_total",
			Help: "Connections and requests the ingester ended because the sender was silent or slow, by reason (idle timeout, slow frame, slow body) and transport.",
		}, []string{"reason", "transport"}),
	}
	if reg != nil {
		m.DroppedBytes = register(reg, m.DroppedBytes)
		m.Cut = register(reg, m.Cut)
	}
	return m
}

// droppedFrame counts a frame, line or record dropped before the
// correlator, in lines and bytes, and logs (rate-limited) its start.
func (s *Server) droppedFrame(p *Pipeline, reason, transport string, bytes int64, start []byte) {
	s.Limits.DroppedBytes.WithLabelValues(reason).Add(float64(bytes))
	p.m.NotUnderstood.WithLabelValues(reason).Inc()
	p.badLog.Info(reason, "dropped input", "reason", reason, "transport", transport, "bytes", bytes, "sample", sample(string(start)))
}

// cut counts a connection or request the ingester ended because its
// sender was too slow or silent, and logs it rate-limited.
func (s *Server) cut(p *Pipeline, reason, transport, remote string) {
	s.Limits.Cut.WithLabelValues(reason, transport).Inc()
	p.badLog.Info("cut "+reason, "ingest connection closed", "reason", reason, "transport", transport, "remote", remote)
}

// perIPListener closes at once a connection from an address that already
// holds max of them (counted and logged), for the HTTP listener: what
// MaxConnectionsPerIP is for syslog.
type perIPListener struct {
	net.Listener
	p         *Pipeline
	transport string
	max       int
	mu        sync.Mutex
	perIP     map[string]int
}

func (l *perIPListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		l.mu.Lock()
		if l.perIP[ip] >= l.max {
			l.mu.Unlock()
			l.p.Refused(ReasonTooManyFromIP, l.transport, c.RemoteAddr().String(), fmt.Sprintf("%d connections from %s (--max-connections-per-ip)", l.max, ip))
			_ = c.Close()
			continue
		}
		l.perIP[ip]++
		l.mu.Unlock()
		return &countedConn{Conn: c, done: func() {
			l.mu.Lock()
			if l.perIP[ip]--; l.perIP[ip] <= 0 {
				delete(l.perIP, ip)
			}
			l.mu.Unlock()
		}}, nil
	}
}

// countedConn calls done once, at its first Close.
type countedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}
