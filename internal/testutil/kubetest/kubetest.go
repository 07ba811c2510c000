// Package kubetest starts a real control plane (kube-apiserver and etcd, via
// controller-runtime's envtest) with mailtrace's CRDs installed, for tests.
//
// One control plane is shared by the tests of a package: start it in TestMain
// with Main, get it in a test with Get, and give every test a fresh namespace
// with Namespace.
//
// The binaries come from KUBEBUILDER_ASSETS or, when that is unset, from
// bin/k8s/<KubeVersion> under the repository root (hack/envtest.sh builds
// them there). When they are missing, tests skip with a message saying how to
// get them, or fail when the CI environment variable is set.
package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/testutil/harness"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

// KubeVersion is the version hack/envtest.sh builds by default.
const KubeVersion = "1.37.2"

// MissingAssetsHint says how to get the control plane binaries.
const MissingAssetsHint = "envtest binaries (kube-apiserver, etcd) not found: run make test, or hack/envtest.sh and set KUBEBUILDER_ASSETS to the directory it prints"

// Env is a running control plane.
type Env struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client uses Scheme and talks to the API server directly (no cache).
	Client client.Client
	// Scheme knows the built-in kinds and mailtrace's.
	Scheme *runtime.Scheme

	env *envtest.Environment
}

var (
	schemeOnce sync.Once
	scheme     *runtime.Scheme
)

// Scheme returns a scheme with client-go's kinds, CRDs and mailtrace.io/v1alpha1.
func Scheme() *runtime.Scheme {
	schemeOnce.Do(func() {
		scheme = runtime.NewScheme()
		utilruntime.Must(clientgoscheme.AddToScheme(scheme))
		utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
		utilruntime.Must(v1alpha1.AddToScheme(scheme))
	})
	return scheme
}

// RepoRoot returns the directory holding go.mod, walking up from the
// working directory (a test runs in its package's directory).
func RepoRoot() (string, error) { return harness.RepoRoot() }

// AssetsDir returns the directory with kube-apiserver and etcd, or an error
// carrying MissingAssetsHint.
func AssetsDir() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"kube-apiserver", "etcd"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("KUBEBUILDER_ASSETS=%s lacks kube-apiserver or etcd; %s", dir, MissingAssetsHint)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("%v; %s", err, MissingAssetsHint)
	}
	dir := filepath.Join(root, "bin", "k8s", KubeVersion)
	if has(dir) {
		return dir, nil
	}
	return "", errors.New(MissingAssetsHint)
}

// Start starts a control plane with the CRDs of config/crd/bases installed.
func Start() (*Env, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		Scheme:                   Scheme(),
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest control plane from %s: %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, Scheme: Scheme(), env: te}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }

var (
	shared     *Env
	skipReason string
)

// Main runs a package's tests against one shared control plane: call it from
// TestMain. setup, when not nil, runs once the control plane is up. Without
// the binaries the tests that call Get skip (fail when CI is set).
func Main(m *testing.M, setup func(env *Env)) {
	os.Exit(Run(m, setup))
}

// Run is Main without the exit, for a TestMain that has more to tear down
// (pgtest.Shutdown): it returns the exit code of m.Run.
func Run(m *testing.M, setup func(env *Env)) int {
	env, err := Start()
	if err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "kubetest:", err)
			return 1
		}
		skipReason = err.Error()
		return m.Run()
	}
	shared = env
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "kubetest: stopping control plane:", err)
		}
	}()
	if setup != nil {
		setup(env)
	}
	return m.Run()
}

// Get returns the package's control plane started by Main; it skips the test
// (or fails it when CI is set) when there is none.
func Get(t testing.TB) *Env {
	t.Helper()
	if shared != nil {
		return shared
	}
	reason := skipReason
	if reason == "" {
		reason = "kubetest.Main was not called from TestMain"
	}
	if os.Getenv("CI") != "" {
		t.Fatal(reason)
	}
	t.Skip(reason)
	return nil
}

// Namespace creates a fresh namespace for the test and deletes it when the
// test ends. (envtest runs no namespace controller, so a deleted namespace
// stays Terminating; names never repeat.)
func Namespace(t testing.TB, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Create(ctx, ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Delete(ctx, ns)
	})
	return ns.Name
}

// Eventually calls cond every interval until it returns true or timeout
// passes, then fails the test with the last message cond gave.
func Eventually(t testing.TB, timeout, interval time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var msg string
	for {
		var ok bool
		ok, msg = cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, msg)
		}
		time.Sleep(interval)
	}
}
