// Package server is the live side of ingest: it takes Postfix log lines from
// the network (syslog over TCP, TLS and UDP; HTTP POSTs of raw lines or of
// the JSON records Fluent Bit and Vector send) or from files, correlates
// them with one ingest.Correlator and appends the events to the trace store.
//
// # Nothing lost, nothing doubled
//
// Lines go through bounded queues: readers hand chunks of lines to the one
// correlator goroutine, which hands batches of events (PipelineOptions
// BatchSize/BatchWait, 500 events or 200 ms) to the one writer goroutine,
// which appends them with store.Append and retries with backoff while the
// store fails. Event IDs are digests of the line, and Append is idempotent
// per event, so a replay (a retried POST, a backfill of a file already
// read, the write-ahead log read again) stores nothing twice.
//
// With a state file (PipelineOptions.StateFile, `--state-file`) the
// readers do not hand lines to the correlator: they append them to a
// write-ahead log (PipelineOptions.WALDir, package wal) and wait for the
// disk (one fsync for every reader waiting at the time) before an HTTP
// POST is answered 204 or a syslog TCP connection is read further; the
// correlator reads the log in the order it was written. Every
// StateInterval and at shutdown the correlator's state (messages in
// flight, trace IDs of short queue ids, events held for a link) is saved
// with the log position it covers, after every event emitted before it is
// stored, and the log behind it is deleted; a start reads the log again
// from there. So a crash at any moment loses no line a sender was told was
// kept, and a message whose lines straddle it stays one message. When the
// store is slow or down the log grows (up to WALMaxBytes; then HTTP
// senders get 503 with Retry-After and TCP connections are not read);
// without a log the queues fill and the readers stop reading, and a POST
// is answered only once its events are stored. UDP is best effort: its
// lines are written to the log without waiting for the disk. What a crash
// can still lose on TCP is what had not reached the log (socket buffers,
// the read buffer, the chunk being written): RFC 6587 has no
// acknowledgement, as every syslog receiver without RELP.
//
// The state and the log are kept in files rather than in the store because
// they are private to one ingester (see below) and written often; on
// Kubernetes put them on the same volume as the SQLite store, or on a PVC
// of the ingester's pod (the chart's StatefulSet).
//
// # Several ingesters
//
// Each ingester correlates the lines it sees. A message's lines must reach
// the same ingester: point each mail server (host) at one ingester, e.g.
// with a Service with sessionAffinity: ClientIP, or one ingester per mail
// server; a TCP syslog connection already sticks to one pod. When a host's
// lines are spread over ingesters anyway, messages with long queue ids
// (enable_long_queue_ids = yes, the default since Postfix 3.x in many
// distributions' configs) still get one trace ID, since that ID is a digest
// of the host and the queue id only and the store merges the events; short
// queue ids and content filter hops need one ingester per host.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
	"github.com/mailtrace/mailtrace/internal/store"
)

// Options configure an ingest server.
type Options struct {
	Pipeline PipelineOptions
	// Listen addresses; empty means off.
	SyslogTCP string // syslog over TCP (TLS when TLSCertFile is set)
	SyslogUDP string
	HTTP      string // POST /ingest
	// TLSCertFile and TLSKeyFile turn on TLS on the TCP syslog and HTTP
	// listeners: a plain-text connection to them is refused.
	TLSCertFile, TLSKeyFile string
	// TLSClientCAFile (PEM) authenticates senders by client certificate
	// (mTLS): required on syslog over TCP, an alternative to the token on
	// HTTP. Needs TLSCertFile.
	TLSClientCAFile string
	// Token is the bearer token HTTP senders must present; TokenFile names
	// a file holding it (a mounted Secret), re-read when it changes.
	Token     string
	TokenFile string
	// InsecureNoAuth lets a listener without a way to authenticate its
	// senders start (syslog without client certificates, HTTP without
	// token or certificates, UDP): for a trusted network only. Without it
	// such a server refuses to start (see Validate). A credential that is
	// configured is required either way.
	InsecureNoAuth bool
	// FlagPrefix names the flags in Validate's messages ("ingest-" in the manager).
	FlagPrefix string
	// MaxLineBytes: longer lines or frames are dropped and counted (default 64 KiB).
	MaxLineBytes int
	// MaxRequestBytes bounds an HTTP request body (default 16 MiB).
	MaxRequestBytes int64
	// LinesPerSecond limits each TCP connection and each HTTP connection
	// (0: no limit): a sender above it is slowed down, not cut off.
	LinesPerSecond float64
	// MaxConnections bounds the open syslog TCP connections (default 512),
	// counted once their TLS handshake is done; one more is closed at once
	// and counted.
	MaxConnections int
	// MaxHandshakes bounds the syslog TLS handshakes in flight (default
	// 64), apart from MaxConnections: connections that never finish their
	// handshake cannot take the places of senders that did.
	MaxHandshakes int
	// MaxConnectionsPerIP bounds the connections from one address (default
	// 32), on syslog TCP (open or in their handshake) and on HTTP each.
	MaxConnectionsPerIP int
	// IdleTimeout closes a syslog TCP connection that sent nothing for
	// that long (default 5m; negative: never).
	IdleTimeout time.Duration
	// FrameTimeout closes a syslog TCP connection whose frame, once
	// begun, is not complete within it (default 30s; negative: never).
	FrameTimeout time.Duration
	// BodyTimeout bounds the reading of an HTTP request body (default 1m;
	// negative: none); a slower body gets 408.
	BodyTimeout time.Duration
	// MaxConcurrentRequests bounds the HTTP ingest requests parsed at once
	// (default 4), and so the request bodies in memory: at most
	// MaxConcurrentRequests x MaxRequestBytes are read at any time (a body
	// that does not fit gets 503 and is retried by the sender); a body is
	// parsed only once it is read, so a slow one holds no parsing slot.
	MaxConcurrentRequests int
	// MaxRecordsPerRequest bounds the lines or JSON records of one HTTP
	// request (default 100000); more get 413, and nothing of it is stored.
	MaxRecordsPerRequest int
	// Registerer receives the metrics (nil: a private registry).
	Registerer prometheus.Registerer
	Log        logr.Logger
}

// Enabled reports whether any listener is configured.
func (o Options) Enabled() bool { return o.SyslogTCP != "" || o.SyslogUDP != "" || o.HTTP != "" }

// Server runs the listeners and the pipeline. Start it with Start (it is a
// controller-runtime Runnable that runs on every replica, leader or not).
type Server struct {
	pipe    atomic.Pointer[Pipeline] // once started
	o       Options
	st      store.Store
	Metrics *Metrics
	Limits  *limitMetrics
	log     logr.Logger

	mu    sync.Mutex
	addrs map[string]net.Addr
	ready chan struct{}
	token *tokenSource
	reqs  chan struct{} // HTTP requests being parsed
	// bodies: bytes of HTTP request bodies in memory (at most
	// MaxConcurrentRequests x MaxRequestBytes)
	bodyMu sync.Mutex
	bodies int64
	// unthrottled ends when the server stops: rate-limited readers then
	// hand over what they read without waiting their turn.
	unthrottled context.Context
}

// New returns a server; nothing listens until Start.
func New(st store.Store, o Options) *Server {
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = defaultMaxFrameBytes
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = 16 << 20
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 512
	}
	if o.MaxConcurrentRequests <= 0 {
		o.MaxConcurrentRequests = 4
	}
	if o.MaxHandshakes <= 0 {
		o.MaxHandshakes = 64
	}
	if o.MaxConnectionsPerIP <= 0 {
		o.MaxConnectionsPerIP = 32
	}
	if o.MaxRecordsPerRequest <= 0 {
		o.MaxRecordsPerRequest = 100000
	}
	o.IdleTimeout = orDefault(o.IdleTimeout, 5*time.Minute)
	o.FrameTimeout = orDefault(o.FrameTimeout, 30*time.Second)
	o.BodyTimeout = orDefault(o.BodyTimeout, time.Minute)
	if o.Pipeline.Correlator.MaxLineBytes <= 0 {
		o.Pipeline.Correlator.MaxLineBytes = o.MaxLineBytes
	}
	o.Pipeline.Live = true
	log := o.Log
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	return &Server{o: o, st: st, Metrics: NewMetrics(o.Registerer), Limits: newLimitMetrics(o.Registerer), log: log,
		addrs: map[string]net.Addr{}, ready: make(chan struct{}),
		token: &tokenSource{static: o.Token, file: o.TokenFile}, reqs: make(chan struct{}, o.MaxConcurrentRequests)}
}

// Healthy is a liveness check: it fails once the write-ahead log has
// failed for good (a failed fsync), which only a restart repairs; until
// then every sender is refused.
func (s *Server) Healthy() error {
	p := s.pipe.Load()
	if p == nil || p.wal == nil {
		return nil
	}
	if err := p.wal.Err(); err != nil {
		return fmt.Errorf("ingest: the write-ahead log failed, restart to reopen it: %w", err)
	}
	return nil
}

// NeedLeaderElection: every replica takes lines (controller-runtime).
func (s *Server) NeedLeaderElection() bool { return false }

// Addr returns the bound address of a listener ("tcp", "udp", "http")
// once Start has bound them (it waits for that), nil when off.
func (s *Server) Addr(name string) net.Addr {
	<-s.ready
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[name]
}

// Start listens until ctx ends, then stops reading, stores what was read
// and saves the state. It returns an error when a listener cannot start
// or events were lost at shutdown, and at once when the options do not
// authenticate senders (see Validate).
func (s *Server) Start(ctx context.Context) error {
	if err := s.o.Validate(); err != nil {
		close(s.ready)
		return err
	}
	syslogTLS, httpTLS, err := s.tlsConfigs()
	if err != nil {
		close(s.ready)
		return err
	}
	p, err := NewPipeline(s.st, s.o.Pipeline, s.Metrics, s.log)
	if err != nil {
		close(s.ready)
		return err
	}
	s.pipe.Store(p)
	var (
		wg      sync.WaitGroup
		closers []func()
		lerr    error
	)
	rctx, stopReaders := context.WithCancel(context.Background())
	defer stopReaders()
	var stopThrottling context.CancelFunc
	s.unthrottled, stopThrottling = context.WithCancel(context.Background())
	defer stopThrottling()
	if s.o.SyslogTCP != "" {
		ln, err := net.Listen("tcp", s.o.SyslogTCP)
		if err == nil {
			transport := "tcp"
			if syslogTLS != nil {
				transport = "tls" // the handshake is the connection's, under its own budget
			}
			s.setAddr("tcp", ln.Addr())
			t := &tcpServer{s: s, p: p, ln: ln, tls: syslogTLS, transport: transport, conns: map[net.Conn]bool{}, perIP: map[string]int{}}
			wg.Add(1)
			go func() { defer wg.Done(); t.serve(rctx) }()
			closers = append(closers, t.close)
		} else {
			lerr = errors.Join(lerr, fmt.Errorf("ingest syslog TCP: %w", err))
		}
	}
	if s.o.SyslogUDP != "" {
		pc, err := net.ListenPacket("udp", s.o.SyslogUDP)
		if err == nil {
			s.setAddr("udp", pc.LocalAddr())
			wg.Add(1)
			go func() { defer wg.Done(); s.serveUDP(rctx, p, pc) }()
			closers = append(closers, func() { _ = pc.Close() })
		} else {
			lerr = errors.Join(lerr, fmt.Errorf("ingest syslog UDP: %w", err))
		}
	}
	if s.o.HTTP != "" {
		ln, err := net.Listen("tcp", s.o.HTTP)
		if err == nil {
			ln = &perIPListener{Listener: ln, p: p, transport: "http", max: s.o.MaxConnectionsPerIP, perIP: map[string]int{}}
			if httpTLS != nil {
				ln = tls.NewListener(ln, httpTLS)
			}
			s.setAddr("http", ln.Addr())
			hs := &http.Server{Handler: s.Handler(p), ReadHeaderTimeout: headerTimeout, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
				ErrorLog: newHTTPErrorLog(p), ConnContext: s.connLimiter}
			wg.Add(1)
			go func() { defer wg.Done(); _ = hs.Serve(ln) }()
			closers = append(closers, func() {
				sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = hs.Shutdown(sctx)
			})
		} else {
			lerr = errors.Join(lerr, fmt.Errorf("ingest HTTP: %w", err))
		}
	}
	close(s.ready)
	if lerr == nil {
		s.log.Info("ingest listening", "syslogTCP", s.Addr("tcp"), "syslogUDP", s.Addr("udp"), "http", s.Addr("http"),
			"tls", syslogTLS != nil, "clientCertificates", s.o.TLSClientCAFile != "",
			"bearerToken", s.o.Token != "" || s.o.TokenFile != "", "stateFile", s.o.Pipeline.StateFile, "walDir", s.o.Pipeline.WALDir)
		if s.o.HTTP != "" && s.o.Token == "" && s.o.TokenFile == "" && s.o.TLSClientCAFile == "" {
			s.log.Info("the HTTP ingest endpoint is unauthenticated (--insecure-no-auth): anyone who reaches it can write traces")
		}
		if s.o.SyslogTCP != "" && s.o.TLSClientCAFile == "" {
			s.log.Info("syslog over TCP is unauthenticated (--insecure-no-auth): keep it on a trusted network")
		}
		if s.o.HTTP != "" && httpTLS == nil && (s.o.Token != "" || s.o.TokenFile != "") {
			s.log.Info("the HTTP ingest token travels in plain text: serve TLS (--tls-cert, --tls-key) unless the network is trusted")
		}
		<-ctx.Done()
	}
	stopThrottling()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	// readers hand over what they read: the pipeline still takes it
	wg.Wait()
	perr := p.Close()
	st := p.Stats()
	s.log.Info("ingest stopped", "lines", st.Lines, "events", st.Events, "messages", st.Messages)
	return errors.Join(lerr, perr)
}

func (s *Server) setAddr(name string, a net.Addr) {
	s.mu.Lock()
	s.addrs[name] = a
	s.mu.Unlock()
}

func (s *Server) serveUDP(ctx context.Context, p *Pipeline, pc net.PacketConn) {
	buf := make([]byte, 65536)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			continue
		}
		if n > s.o.MaxLineBytes {
			p.Dropped(ReasonFrameTooLong, "udp", string(buf[:200]))
			continue
		}
		var msgs []syslog.Message
		for _, l := range strings.Split(strings.TrimRight(string(buf[:n]), "\r\n\x00"), "\n") {
			if l = strings.TrimRight(l, "\r"); l != "" {
				msgs = append(msgs, syslog.ParseFrame(l))
			}
		}
		// UDP has no acknowledgement: best effort, written to the
		// write-ahead log without waiting for the disk
		if len(msgs) > 0 {
			if err := p.SubmitNoSync(ctx, "udp", msgs); err != nil {
				if !Retryable(err) {
					return
				}
				p.Dropped(ReasonWALFull, "udp", msgs[0].Text())
			}
		}
	}
}

// newLimiter returns the per-connection line rate limiter (nil: no limit).
func (s *Server) newLimiter() *rate.Limiter {
	if s.o.LinesPerSecond <= 0 {
		return nil
	}
	burst := int(s.o.LinesPerSecond)
	if burst < chunkLines {
		burst = chunkLines
	}
	return rate.NewLimiter(rate.Limit(s.o.LinesPerSecond), burst)
}

// waitLines waits until lim lets n lines through (in steps of its burst).
func waitLines(ctx context.Context, lim *rate.Limiter, n int) error {
	if lim == nil {
		return nil
	}
	for n > 0 {
		k := min(n, lim.Burst())
		if err := lim.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

type limiterKey struct{}

// connLimiter gives each HTTP connection its own rate limiter.
func (s *Server) connLimiter(ctx context.Context, _ net.Conn) context.Context {
	if lim := s.newLimiter(); lim != nil {
		return context.WithValue(ctx, limiterKey{}, lim)
	}
	return ctx
}

// tokenSource returns the bearer token, re-reading its file when the file
// changes (a rotated Secret).
type tokenSource struct {
	static, file string
	mu           sync.Mutex
	mod          time.Time
	size         int64
	cached       string
	err          error
}

func (t *tokenSource) get() (string, error) {
	if t.file == "" {
		return t.static, nil
	}
	fi, err := os.Stat(t.file)
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if fi.ModTime().Equal(t.mod) && fi.Size() == t.size && t.err == nil && t.cached != "" {
		return t.cached, nil
	}
	b, err := os.ReadFile(t.file)
	t.mod, t.size, t.err = fi.ModTime(), fi.Size(), err
	t.cached = strings.TrimSpace(string(b))
	if err == nil && t.cached == "" {
		t.err = errors.New("token file " + t.file + " is empty")
	}
	return t.cached, t.err
}
