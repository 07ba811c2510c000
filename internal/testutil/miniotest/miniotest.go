// Package miniotest gives tests a real S3-compatible server: one MinIO server
// per test process, on a free loopback port, with a temporary data directory
// and fixed root credentials, and a fresh bucket per call to Bucket. It is
// stopped, and its directory removed, by Main:
//
//	func TestMain(m *testing.M) { miniotest.Main(m) }
//
// The server binary is the one named by MAILTRACE_TEST_MINIO, else the newest
// bin/minio-* of the repository (built by hack/minio.sh, or `make test`).
// Tests never build it: when it is missing they skip with a message saying
// how to build it, or fail with that message when CI is set.
//
// TLSServer starts a second server, on HTTPS with a self-signed certificate,
// for tests of custom CA bundles.
package miniotest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/testutil/harness"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// EnvBinary names the environment variable holding the MinIO server binary.
const EnvBinary = "MAILTRACE_TEST_MINIO"

// The root credentials of the test server.
const (
	AccessKey = "mailtrace-test"
	SecretKey = "mailtrace-test-secret-key"
)

const buildHint = "run hack/minio.sh (or make test) to build it into bin/, or point " + EnvBinary + " at a minio server binary"

// errMissing marks "the MinIO binary is not there": skip, or fail under CI.
type errMissing struct{ msg string }

func (e errMissing) Error() string { return e.msg }

type server struct {
	mu      sync.Mutex
	bin     string
	dir     string // temp root: data/, certs/ and minio.log
	port    int
	caPEM   []byte // the TLS server's certificate (self-signed); nil for plain HTTP
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile *os.File
}

var (
	startOnce sync.Once
	srv       *server
	startErr  error
	tlsOnce   sync.Once
	tlsSrv    *server
	tlsErr    error
	seqMu     sync.Mutex
	seq       int
)

// Main runs the tests, then stops the server (if one was started) and
// removes its directory. Use it as TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

// Shutdown stops the servers and removes their directories. Main calls it.
func Shutdown() {
	for _, s := range []*server{srv, tlsSrv} {
		if s == nil {
			continue
		}
		s.mu.Lock()
		_ = s.stopLocked()
		if s.logFile != nil {
			s.logFile.Close()
		}
		os.RemoveAll(s.dir)
		s.mu.Unlock()
	}
}

func fail(t testing.TB, err error) {
	t.Helper()
	var m errMissing
	if errors.As(err, &m) && os.Getenv("CI") == "" {
		t.Skip(err.Error())
	}
	t.Fatal(err.Error())
}

// Binary returns the MinIO server binary: MAILTRACE_TEST_MINIO, else the
// newest bin/minio-* under the repository root (the directory holding go.mod).
func Binary() (string, error) {
	if b := os.Getenv(EnvBinary); b != "" {
		if isExec(b) {
			return b, nil
		}
		return "", errMissing{fmt.Sprintf("miniotest: %s=%s is not an executable; %s", EnvBinary, b, buildHint)}
	}
	root, err := harness.RepoRoot()
	if err != nil {
		return "", errMissing{"miniotest: " + err.Error() + "; " + buildHint}
	}
	matches, _ := filepath.Glob(filepath.Join(root, "bin", "minio-*"))
	sort.Sort(sort.Reverse(sort.StringSlice(matches)))
	for _, m := range matches {
		if !strings.HasSuffix(m, ".tmp") && isExec(m) {
			return m, nil
		}
	}
	return "", errMissing{fmt.Sprintf("miniotest: no MinIO server binary in %s/bin/minio-*; %s", root, buildHint)}
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Server returns the endpoint (host:port, plain HTTP) and root credentials
// of the server, starting it on first use.
func Server(t testing.TB) (endpoint, accessKey, secretKey string) {
	t.Helper()
	startOnce.Do(func() { srv, startErr = start(false) })
	if startErr != nil {
		fail(t, startErr)
	}
	return srv.endpoint(), AccessKey, SecretKey
}

// TLSServer returns the endpoint (host:port, HTTPS) of a second server that
// serves TLS with a self-signed certificate for 127.0.0.1, and that
// certificate (PEM), starting it on first use. It has the same root
// credentials and no buckets: create them with TLSBucket.
func TLSServer(t testing.TB) (endpoint string, caPEM []byte) {
	t.Helper()
	tlsOnce.Do(func() { tlsSrv, tlsErr = start(true) })
	if tlsErr != nil {
		fail(t, tlsErr)
	}
	return tlsSrv.endpoint(), tlsSrv.caPEM
}

// TLSBucket creates a fresh bucket on the TLS server.
func TLSBucket(t testing.TB) string {
	t.Helper()
	ep, ca := TLSServer(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c, err := minio.New(ep, &minio.Options{
		Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), Secure: true, MaxRetries: 1,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	})
	if err != nil {
		t.Fatalf("miniotest: client: %v", err)
	}
	return makeBucket(t, c)
}

// Client returns a minio-go client with the root credentials (one attempt
// per request, so a stopped server fails fast).
func Client(t testing.TB) *minio.Client {
	t.Helper()
	ep, ak, sk := Server(t)
	c, err := minio.New(ep, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, ""), MaxRetries: 1})
	if err != nil {
		t.Fatalf("miniotest: client: %v", err)
	}
	return c
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// Bucket creates a fresh, empty bucket and returns its name. It is removed,
// with its content, when the test ends (when the server still runs).
func Bucket(t testing.TB) string {
	t.Helper()
	return makeBucket(t, Client(t))
}

func makeBucket(t testing.TB, c *minio.Client) string {
	t.Helper()
	seqMu.Lock()
	seq++
	n := seq
	seqMu.Unlock()
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	base := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[len(base)-40:], "-")
	}
	name := fmt.Sprintf("mt-%s-%d-%s", base, n, hex.EncodeToString(rnd[:]))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("miniotest: make bucket %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.RemoveBucketWithOptions(ctx, name, minio.RemoveBucketOptions{ForceDelete: true})
	})
	return name
}

// Stop stops the server, keeping its data, so a test can watch a client cope
// with the store being down; Start brings it back on the same port. Tests
// that use Stop must not run in parallel with others that need the server.
func Stop(t testing.TB) {
	t.Helper()
	Server(t)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if err := srv.stopLocked(); err != nil {
		t.Fatalf("miniotest: stop: %v", err)
	}
}

// Start starts the server again after Stop (a no-op when it runs).
func Start(t testing.TB) {
	t.Helper()
	Server(t)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.cmd != nil {
		return
	}
	if err := srv.runLocked(); err != nil {
		t.Fatalf("miniotest: start: %v", err)
	}
}

// Restart stops and starts the server.
func Restart(t testing.TB) {
	t.Helper()
	Stop(t)
	Start(t)
}

// ClosedEndpoint returns a loopback host:port where nothing listens.
func ClosedEndpoint(t testing.TB) string {
	t.Helper()
	p, err := harness.FreePort()
	if err != nil {
		t.Fatalf("miniotest: %v", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

func (s *server) endpoint() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

func start(withTLS bool) (*server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	s := &server{bin: bin}
	if s.dir, err = os.MkdirTemp("", "mailtrace-miniotest-"); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(s.dir)
		}
	}()
	for _, d := range []string{"data", "certs"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	if withTLS {
		if s.caPEM, err = selfSigned(filepath.Join(s.dir, "certs")); err != nil {
			return nil, err
		}
	}
	if s.logFile, err = os.Create(filepath.Join(s.dir, "minio.log")); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if s.port, err = harness.FreePort(); err != nil {
			return nil, err
		}
		if lastErr = s.runLocked(); lastErr == nil {
			ok = true
			return s, nil
		}
	}
	return nil, lastErr
}

// runLocked starts minio on s.port and waits until it is live.
func (s *server) runLocked() error {
	console, err := harness.FreePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "server", filepath.Join(s.dir, "data"),
		"--address", s.endpoint(), "--console-address", fmt.Sprintf("127.0.0.1:%d", console),
		"--certs-dir", filepath.Join(s.dir, "certs"), "--quiet")
	// Pdeathsig stops the server even when the test binary dies without
	// reaching Main (a test timeout panics); see spawn.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cmd.Dir = s.dir
	cmd.Env = []string{
		"HOME=" + s.dir, "PATH=/usr/bin:/bin", "TZ=UTC",
		"MINIO_ROOT_USER=" + AccessKey, "MINIO_ROOT_PASSWORD=" + SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=on",
	}
	cmd.Stdout, cmd.Stderr = s.logFile, s.logFile
	if err := harness.Spawn(cmd); err != nil {
		return fmt.Errorf("miniotest: start %s: %v", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			s.cmd = nil
			log, _ := os.ReadFile(filepath.Join(s.dir, "minio.log"))
			return fmt.Errorf("miniotest: minio exited at start:\n%s", harness.Tail(string(log), 2000))
		default:
		}
		err := s.ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			_ = s.stopLocked()
			return fmt.Errorf("miniotest: minio was not ready within a minute: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready reports whether the server is live and its object layer is up:
// /minio/health/live answers 200 as soon as the HTTP server listens (with
// X-Minio-Server-Status: offline until the drives are initialised), and
// /minio/health/cluster answers 200 once it can take writes.
func (s *server) ready() error {
	hc := &http.Client{Timeout: 2 * time.Second}
	scheme := "http://"
	if s.caPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(s.caPEM)
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		scheme = "https://"
	}
	for _, path := range []string{"/minio/health/live", "/minio/health/cluster"} {
		u := scheme + s.endpoint() + path
		resp, err := hc.Get(u)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %s", u, resp.Status)
		}
		if st := resp.Header.Get("X-Minio-Server-Status"); st != "" {
			return fmt.Errorf("%s: server status %s", u, st)
		}
	}
	return nil
}

// stopLocked asks minio to stop, then kills it.
func (s *server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd = nil }()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		_ = s.cmd.Process.Signal(sig)
		select {
		case <-s.exited:
			return nil
		case <-time.After(20 * time.Second):
		}
	}
	return errors.New("minio did not exit")
}

// selfSigned writes public.crt and private.key (what MinIO looks for in its
// certs dir) for a self-signed certificate valid for 127.0.0.1 and
// localhost, and returns the certificate as PEM.
func selfSigned(dir string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "miniotest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "public.crt"), crt, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "private.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, err
	}
	return crt, nil
}
