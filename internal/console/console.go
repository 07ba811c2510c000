// Package console is the message trace console: the source product's
// message trace pages (home with default, custom and recent queries and
// reports; the new-trace form; results with counts, paging and a status
// filter; a message's details; report downloads; schedules) served as
// HTML from Go templates embedded in the binary, in English and Japanese.
//
// It is a client of the API only, like the kubectl plugin that serves it
// (`kubectl mailtrace ui`): every Kubernetes request is made with the
// user's own credentials, the kubeconfig's on 127.0.0.1, or in the
// cluster the bearer token an OIDC proxy forwards, so RBAC and TracePolicy
// grants decide what it shows. It never imports a store or a controller
// (depguard's plugin-is-a-client rule covers it).
package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Mode says how the console learns who the user is.
type Mode int

const (
	// Local is `kubectl mailtrace ui`: one user, the kubeconfig's; a
	// one-time token in the printed URL opens a session.
	Local Mode = iota
	// Proxy is the in-cluster Deployment behind an OIDC proxy: every
	// request carries the user's own token (Authorization: Bearer), and
	// the console acts with it alone.
	Proxy
)

// Options configure a console.
type Options struct {
	Mode Mode
	// Client acts as the kubeconfig's user (Local).
	Client client.Client
	// Config reaches the API server (host, CA) without credentials of its
	// own (Proxy): each request's bearer token is added to a copy.
	Config *rest.Config
	// Scheme of the clients made for Proxy (default: Kubernetes' and mailtrace's kinds).
	Scheme *runtime.Scheme
	// Namespace the console opens.
	Namespace string
	// Domains are the organisation's accepted domains, for the default queries.
	Domains []string
	// Log receives one line per failed request (never a token or a URL's query).
	Log io.Writer
	// Poll is how often the console re-reads an object it waits on (default 300ms).
	Poll time.Duration
	// Wait is how long a request waits for the manager (details, a
	// download's URL) before the page refreshes itself (default 10s).
	Wait time.Duration
}

// Server is a console.
type Server struct {
	opts  Options
	cats  map[string]*catalog
	pages map[string]*template.Template
	key   []byte // CSRF tokens' HMAC key, random per start
	local *localAuth
	token string // the one-time token of the printed URL (Local)
	log   *slog.Logger
	mux   *http.ServeMux

	usersMu sync.Mutex
	users   map[string]cachedUser // identity -> user name

	clientsMu sync.Mutex
	clients   map[string]cachedClient // a bearer token's identity -> its client (Proxy)
}

// New builds a console.
func New(opts Options) (*Server, error) {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.Poll <= 0 {
		opts.Poll = 300 * time.Millisecond
	}
	if opts.Wait <= 0 {
		opts.Wait = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	switch opts.Mode {
	case Local:
		if opts.Client == nil {
			return nil, errors.New("console: a local console needs a client")
		}
	case Proxy:
		if opts.Config == nil {
			return nil, errors.New("console: a proxied console needs the API server's address")
		}
		if opts.Config.BearerToken != "" || opts.Config.BearerTokenFile != "" || opts.Config.CertData != nil || opts.Config.CertFile != "" || opts.Config.Username != "" {
			return nil, errors.New("console: a proxied console acts with each user's own token only: its config must carry no credentials")
		}
	}
	cats, err := loadCatalogs()
	if err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, cats: cats, pages: pages, key: []byte(randomToken()), users: map[string]cachedUser{}, clients: map[string]cachedClient{},
		log: slog.New(slog.NewTextHandler(opts.Log, nil))}
	if opts.Mode == Local {
		s.token = randomToken()
		s.local = newLocalAuth(s.token)
	}
	s.routes()
	return s, nil
}

// LoginURL is the URL to open for a console listening on addr: with the
// one-time token in Local mode.
func (s *Server) LoginURL(addr string) string {
	if s.opts.Mode != Local {
		return "http://" + addr + "/"
	}
	return "http://" + addr + "/login?token=" + url.QueryEscape(s.token)
}

// Serve answers on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.local != nil {
		s.local.allowHost(ln.Addr().String())
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		return nil
	}
}

// ServeHTTP checks who is asking, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	if s.local != nil && !s.local.hostOK(r.Host) {
		http.Error(w, "this console answers only at its own address", http.StatusMisdirectedRequest)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(http.FileServerFS(static))))
	m.HandleFunc("GET /login", s.login)
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }
	m.HandleFunc("GET /healthz", ok) // the process answers
	m.HandleFunc("GET /readyz", ok)  // nothing to warm up: each request brings its own client
	m.HandleFunc("GET /{$}", s.auth(func(w http.ResponseWriter, r *http.Request, _ *request) {
		http.Redirect(w, r, "/ns/"+url.PathEscape(s.opts.Namespace)+"/", http.StatusSeeOther)
	}))
	m.HandleFunc("GET /ns", s.auth(func(w http.ResponseWriter, r *http.Request, _ *request) {
		ns := strings.TrimSpace(r.URL.Query().Get("ns"))
		if ns == "" {
			ns = s.opts.Namespace
		}
		http.Redirect(w, r, "/ns/"+url.PathEscape(ns)+"/", http.StatusSeeOther)
	}))
	m.HandleFunc("GET /ns/{ns}/{$}", s.auth(s.home))
	m.HandleFunc("GET /ns/{ns}/new", s.auth(s.newTrace))
	m.HandleFunc("POST /ns/{ns}/traces", s.auth(s.createTrace))
	m.HandleFunc("POST /ns/{ns}/default/{id}", s.auth(s.runDefault))
	m.HandleFunc("GET /ns/{ns}/traces/{name}", s.auth(s.trace))
	m.HandleFunc("POST /ns/{ns}/traces/{name}/download", s.auth(s.download))
	m.HandleFunc("POST /ns/{ns}/traces/{name}/continue", s.auth(s.continueTrace))
	m.HandleFunc("POST /ns/{ns}/traces/{name}/save", s.auth(s.saveQuery))
	m.HandleFunc("GET /ns/{ns}/schedules", s.auth(s.schedules))
	m.HandleFunc("GET /ns/{ns}/schedules/{name}", s.auth(s.schedule))
	m.HandleFunc("POST /ns/{ns}/schedules/{name}/{action}", s.auth(s.scheduleAction))
	s.mux = m
}

func cacheFor(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=300")
		h.ServeHTTP(w, r)
	})
}

// login exchanges the one-time token for a session cookie.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.local == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	id, ok := s.local.exchange(r.URL.Query().Get("token"))
	if !ok {
		if _, has := s.local.session(r); has {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		s.fail(w, r, &request{lang: pickLanguage(r), loc: time.UTC}, http.StatusForbidden, "error.token", nil)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: s.local.cookieName(), Value: id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(sessionTTL / time.Second)})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// request is what a handler knows of the request beyond http's.
type request struct {
	c        client.Client
	ns       string
	lang     string
	tz       string
	loc      *time.Location
	csrf     string
	identity string
}

// tzCookie remembers the time zone the user chose (or the browser's,
// which console.js sets when there is none).
const tzCookie = "mailtrace_tz"

// auth authenticates the request, builds its client and checks a form's
// CSRF token, then calls h.
func (s *Server) auth(h func(http.ResponseWriter, *http.Request, *request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rq := &request{lang: pickLanguage(r), ns: r.PathValue("ns"), tz: "UTC", loc: time.UTC}
		if c, err := r.Cookie(tzCookie); err == nil {
			if v, err := url.QueryUnescape(c.Value); err == nil {
				if loc, err := time.LoadLocation(v); err == nil && v != "" && v != "Local" {
					rq.tz, rq.loc = v, loc
				}
			}
		}
		switch s.opts.Mode {
		case Local:
			id, ok := s.local.session(r)
			if !ok {
				s.fail(w, r, rq, http.StatusUnauthorized, "error.session", nil)
				return
			}
			rq.identity, rq.c = id, s.opts.Client
		case Proxy:
			tok := bearer(r)
			if tok == "" {
				s.fail(w, r, rq, http.StatusUnauthorized, "error.bearer", nil)
				return
			}
			c, err := s.clientFor(tok)
			if err != nil {
				s.fail(w, r, rq, http.StatusInternalServerError, "error.kube", err)
				return
			}
			rq.identity, rq.c = identityOfBearer(tok), c
		}
		rq.csrf = csrfToken(s.key, rq.identity)
		if r.Method == http.MethodPost {
			if !sameOrigin(r) || !csrfOK(s.key, rq.identity, r.PostFormValue("csrf")) {
				s.fail(w, r, rq, http.StatusForbidden, "error.csrf", nil)
				return
			}
		}
		h(w, r, rq)
	}
}

// clientFor is a client acting with a user's bearer token and nothing else,
// kept a few minutes per token (a client learns the API's kinds once).
func (s *Server) clientFor(tok string) (client.Client, error) {
	id := identityOfBearer(tok)
	s.clientsMu.Lock()
	if cc, ok := s.clients[id]; ok && time.Now().Before(cc.until) {
		s.clientsMu.Unlock()
		return cc.c, nil
	}
	s.clientsMu.Unlock()
	c, err := s.newBearerClient(tok)
	if err != nil {
		return nil, err
	}
	s.clientsMu.Lock()
	defer s.clientsMu.Unlock()
	if len(s.clients) > 500 {
		clear(s.clients)
	}
	s.clients[id] = cachedClient{c: c, until: time.Now().Add(5 * time.Minute)}
	return c, nil
}

type cachedClient struct {
	c     client.Client
	until time.Time
}

func (s *Server) newBearerClient(tok string) (client.Client, error) {
	cfg := rest.AnonymousClientConfig(s.opts.Config)
	cfg.BearerToken = tok
	scheme := s.opts.Scheme
	if scheme == nil {
		scheme = NewScheme()
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// page is what every template gets.
type page struct {
	s       *Server
	rq      *request
	Title   string
	NS      string
	CSRF    string
	TZ      string
	Lang    string
	Refresh int // seconds; 0: none
	Nav     string
	Data    any
	Now     time.Time
}

// T is the message key in the page's language.
func (p *page) T(key string, args ...any) string {
	return p.s.cats[p.Lang].text(p.s.cats["en"], key, args...)
}

// Time formats t in the page's time zone.
func (p *page) Time(t any) string {
	var tt time.Time
	switch v := t.(type) {
	case metav1.Time:
		tt = v.Time
	case *metav1.Time:
		if v == nil {
			return "-"
		}
		tt = v.Time
	case time.Time:
		tt = v
	}
	if tt.IsZero() {
		return "-"
	}
	return tt.In(p.rq.loc).Format("2006-01-02 15:04:05")
}

// Status is a delivery status in the page's language.
func (p *page) Status(st any) string { return p.T("status." + fmt.Sprint(st)) }

// Path is a console path in the page's namespace.
func (p *page) Path(parts ...string) string {
	var b strings.Builder
	b.WriteString("/ns/" + url.PathEscape(p.NS))
	for _, s := range parts {
		b.WriteString("/" + url.PathEscape(s))
	}
	return b.String()
}

func (s *Server) newPage(rq *request, title, nav string, data any) *page {
	return &page{s: s, rq: rq, Title: title, NS: rq.ns, CSRF: rq.csrf, TZ: rq.tz, Lang: rq.lang, Nav: nav, Data: data, Now: time.Now()}
}

// render writes a page (status 200 unless code says otherwise).
func (s *Server) render(w http.ResponseWriter, code int, name string, p *page) {
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		s.log.Error("rendering", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

// errorData is the error page's.
type errorData struct {
	Key    string
	Detail string
}

// fail answers with the error page: a message of the catalog and, for a
// Kubernetes error, what the API server said (its messages name the
// user, the verb and the resource, never a credential).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, rq *request, code int, key string, err error) {
	d := errorData{Key: key}
	if err != nil {
		d.Detail = err.Error()
		s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	}
	s.render(w, code, "error", s.newPage(rq, "", "", d))
}

// kubeFail answers a Kubernetes error with the status it deserves.
func (s *Server) kubeFail(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	switch {
	case apierrors.IsForbidden(err):
		s.fail(w, r, rq, http.StatusForbidden, "error.forbidden", err)
	case apierrors.IsUnauthorized(err):
		s.fail(w, r, rq, http.StatusUnauthorized, "error.unauthorized", err)
	case apierrors.IsNotFound(err):
		s.fail(w, r, rq, http.StatusNotFound, "error.notfound", err)
	default:
		s.fail(w, r, rq, http.StatusBadGateway, "error.kube", err)
	}
}

// parsePages parses each page with the layout.
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"join": strings.Join,
		"list": func(s ...string) []string { return s },
		"has":  func(l []string, v string) bool { return slices.Contains(l, v) },
		"lastRun": func(st v1alpha1.MessageTraceScheduleStatus) *metav1.Time {
			if st.LastRunTime != nil {
				return st.LastRunTime
			}
			return st.LastScheduleTime
		},
		"itoa":  strconv.Itoa,
		"add":   func(a, b int) int { return a + b },
		"i64":   func(n int64) string { return strconv.FormatInt(n, 10) },
		"i32":   func(n int32) string { return strconv.Itoa(int(n)) },
		"query": func(kv ...string) template.URL { return template.URL(queryString(kv...)) },
		"pct": func(a, b int64) int64 {
			if b <= 0 {
				return 0
			}
			return min(100, a*100/b)
		},
	}
	out := map[string]*template.Template{}
	for _, name := range []string{"home", "new", "trace", "schedules", "schedule", "error"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// queryString is "?k=v&..." of the pairs whose value is not empty.
func queryString(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" && kv[i+1] != "0" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return "?"
	}
	return "?" + v.Encode()
}

// statusOf says whether a trace failed, with its condition.
func failedCondition(mt *v1alpha1.MessageTrace) *metav1.Condition {
	if c := mt.Condition(v1alpha1.ConditionFailed); c != nil && c.Status == metav1.ConditionTrue {
		return c
	}
	return nil
}
