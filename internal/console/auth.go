package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// sessionCookie holds the session of `kubectl mailtrace ui` once the
// one-time token of the printed URL was exchanged for it. Cookies are not
// kept apart by port, so each console's carries its port in its name: two
// consoles (two clusters, two users) in one browser keep their sessions.
const sessionCookie = "mailtrace_session"

// sessionTTL bounds a session of the local console.
const sessionTTL = 12 * time.Hour

// randomToken is 32 random bytes, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on a supported platform
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// localAuth is the authentication of the console on 127.0.0.1: the one-time
// token of the printed URL, exchanged once for a session cookie (HttpOnly,
// SameSite=Strict). Every request must also name the console's own address
// in Host, so a web page cannot reach it through DNS rebinding.
type localAuth struct {
	mu       sync.Mutex
	token    string // "" once used
	sessions map[string]time.Time
	hosts    map[string]bool // host:port values a request may name
	cookie   string          // the session cookie's name
}

func newLocalAuth(token string) *localAuth {
	return &localAuth{token: token, sessions: map[string]time.Time{}, hosts: map[string]bool{}, cookie: sessionCookie}
}

// allowHost adds the address the console listens on (127.0.0.1:port and localhost:port).
func (a *localAuth) allowHost(addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hosts[addr] = true
	if _, port, err := net.SplitHostPort(addr); err == nil {
		a.cookie = sessionCookie + "_" + port
		a.hosts["localhost:"+port] = true
		a.hosts["127.0.0.1:"+port] = true
		a.hosts["[::1]:"+port] = true
	}
}

func (a *localAuth) hostOK(h string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.hosts) == 0 || a.hosts[strings.ToLower(h)]
}

// exchange swaps the one-time token for a new session id; false when the
// token is wrong or was used already.
func (a *localAuth) exchange(tok string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(a.token)) != 1 {
		return "", false
	}
	a.token = ""
	id := randomToken()
	a.sessions[id] = time.Now().Add(sessionTTL)
	return id, true
}

// session returns the session id of r, if it names a live session.
func (a *localAuth) session(r *http.Request) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, err := r.Cookie(a.cookie)
	if err != nil {
		return "", false
	}
	exp, ok := a.sessions[c.Value]
	if !ok || time.Now().After(exp) {
		delete(a.sessions, c.Value)
		return "", false
	}
	return c.Value, true
}

// bearer is the token of an "Authorization: Bearer" header, as an OIDC
// proxy (oauth2-proxy --pass-authorization-header) forwards it.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// csrfToken is the token of the forms of one identity (a session, or a
// bearer token's hash): an HMAC under the console's key, so it needs no
// storage and is worthless for another identity.
func csrfToken(key []byte, identity string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("csrf\x00" + identity))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func csrfOK(key []byte, identity, got string) bool {
	return got != "" && hmac.Equal([]byte(got), []byte(csrfToken(key, identity)))
}

// identityOfBearer names a bearer token without keeping it.
func identityOfBearer(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return "bearer:" + base64.RawURLEncoding.EncodeToString(s[:])
}

// sameOrigin says whether a request that changes something (or creates a
// details trace) comes from the console's own pages: the browser's
// Sec-Fetch-Site, else Origin, else Referer must name the console's host.
// SameSite=Strict already keeps the local session cookie off cross-site
// requests; this also covers the proxy mode, whose cookie is the proxy's.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
	default:
		return false
	}
	for _, h := range []string{r.Header.Get("Origin"), r.Header.Get("Referer")} {
		if h == "" {
			continue
		}
		rest, ok := strings.CutPrefix(h, "http://")
		if !ok {
			rest, ok = strings.CutPrefix(h, "https://")
		}
		host, _, _ := strings.Cut(rest, "/")
		return ok && strings.EqualFold(host, r.Host)
	}
	return false
}

func (a *localAuth) cookieName() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cookie
}
