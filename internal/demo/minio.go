package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// DefaultMinIO is the MinIO server binary the demo runs: the newest
// bin/minio-* of the checkout around the working directory (hack/minio.sh
// builds it there), or "" when there is none.
func DefaultMinIO() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	root := RepoRoot(wd)
	if root == "" {
		return ""
	}
	matches, _ := filepath.Glob(filepath.Join(root, "bin", "minio-*"))
	sort.Sort(sort.Reverse(sort.StringSlice(matches)))
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && !strings.HasSuffix(m, ".tmp") && !st.IsDir() && st.Mode()&0o111 != 0 {
			return m
		}
	}
	return ""
}

// CheckMinIO tells whether bin is a runnable MinIO server binary.
func CheckMinIO(bin string) error {
	if bin == "" {
		return errors.New("no MinIO server binary: pass --minio PATH (hack/minio.sh builds it and prints PATH)")
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable MinIO server: run hack/minio.sh and pass --minio with the path it prints", bin)
	}
	return nil
}

// MinIO is a MinIO server on loopback with generated root credentials.
type MinIO struct {
	Endpoint  string // 127.0.0.1:port, plain HTTP
	AccessKey string
	SecretKey string
	Dir       string // data and log
	cmd       *exec.Cmd
	exited    chan struct{}
	log       *os.File
}

// StartMinIO starts bin on a free loopback port with its data in dir
// (created, emptied first) and waits until it is ready.
func StartMinIO(ctx context.Context, bin, dir string) (*MinIO, error) {
	if err := CheckMinIO(bin); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	m := &MinIO{Dir: dir, AccessKey: "demo-" + randHex(6), SecretKey: randHex(20)}
	var err error
	if m.log, err = os.Create(filepath.Join(dir, "minio.log")); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if lastErr = m.run(ctx, bin); lastErr == nil {
			return m, nil
		}
	}
	m.log.Close()
	return nil, lastErr
}

func (m *MinIO) run(ctx context.Context, bin string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	console, err := freePort()
	if err != nil {
		return err
	}
	m.Endpoint = fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "server", filepath.Join(m.Dir, "data"), "--address", m.Endpoint,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", console), "--quiet")
	// dies with us, and a Ctrl-C in the terminal is ours to handle
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cmd.Dir = m.Dir
	cmd.Env = []string{
		"HOME=" + m.Dir, "PATH=/usr/bin:/bin", "TZ=UTC",
		"MINIO_ROOT_USER=" + m.AccessKey, "MINIO_ROOT_PASSWORD=" + m.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=on",
	}
	cmd.Stdout, cmd.Stderr = m.log, m.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	m.cmd, m.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(m.exited) }()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-m.exited:
			m.cmd = nil
			b, _ := os.ReadFile(filepath.Join(m.Dir, "minio.log"))
			return fmt.Errorf("minio exited at start:\n%s", tail(string(b), 2000))
		case <-ctx.Done():
			_ = m.Stop()
			return ctx.Err()
		default:
		}
		resp, err := hc.Get("http://" + m.Endpoint + "/minio/health/cluster")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("health: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			_ = m.Stop()
			return fmt.Errorf("minio was not ready within a minute: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client is an S3 client of the server, as root.
func (m *MinIO) Client() (*minio.Client, error) {
	return minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""), Secure: false})
}

// MakeBucket creates a bucket.
func (m *MinIO) MakeBucket(ctx context.Context, name string) error {
	c, err := m.Client()
	if err != nil {
		return err
	}
	return c.MakeBucket(ctx, name, minio.MakeBucketOptions{})
}

// Stop stops the server (its data stays in Dir).
func (m *MinIO) Stop() error {
	if m.cmd == nil {
		return nil
	}
	defer func() { m.cmd = nil; m.log.Close() }()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		_ = m.cmd.Process.Signal(sig)
		select {
		case <-m.exited:
			return nil
		case <-time.After(20 * time.Second):
		}
	}
	return errors.New("minio did not exit")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
