package demo

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/config/admission"
	"github.com/mailtrace/mailtrace/config/samples"
)

// KubeVersion is the control plane version hack/envtest.sh builds.
const KubeVersion = "1.37.2"

// Module is this repository's Go module path.
const Module = "github.com/mailtrace/mailtrace"

// crdFS is a copy of config/crd/bases, so that the binary can start a
// control plane anywhere. TestEmbeddedCRDsMatchConfig keeps it in step;
// refresh it with `cp config/crd/bases/*.yaml internal/demo/crds/`.
//
//go:embed crds/*.yaml
var crdFS embed.FS

// RepoRoot returns the root of a mailtrace checkout containing dir (the
// directory holding mailtrace's go.mod), or "" when dir is not inside one.
func RepoRoot(dir string) string {
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module "+Module+"\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// DefaultAssets is where the control plane binaries are looked for:
// KUBEBUILDER_ASSETS, else bin/k8s/<KubeVersion> in the checkout around the
// working directory (hack/envtest.sh builds them there).
func DefaultAssets() string {
	if v := os.Getenv("KUBEBUILDER_ASSETS"); v != "" {
		return v
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	if root := RepoRoot(wd); root != "" {
		return filepath.Join(root, "bin", "k8s", KubeVersion)
	}
	return ""
}

// CheckAssets tells whether dir holds kube-apiserver and etcd.
func CheckAssets(dir string) error {
	if dir == "" {
		return errors.New("no envtest binaries: pass --assets DIR (hack/envtest.sh builds them and prints DIR)")
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
			return fmt.Errorf("%s not found in %s: run hack/envtest.sh (or make envtest) and pass --assets with the directory it prints", b, dir)
		}
	}
	return nil
}

// ControlPlane is a local kube-apiserver and etcd with mailtrace's CRDs installed.
type ControlPlane struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Kubeconfig is a kubeconfig file for the same user.
	Kubeconfig []byte
	// CRDSource says where the CRDs came from.
	CRDSource string
	env       *envtest.Environment
}

// StartControlPlane starts kube-apiserver and etcd from assets and installs
// the CRDs: those of the checkout around the working directory when there is
// one (the freshest), else the copy embedded in the binary, written to
// workDir/crds.
func StartControlPlane(assets, workDir string, scheme *runtime.Scheme) (*ControlPlane, error) {
	if err := CheckAssets(assets); err != nil {
		return nil, err
	}
	crdDir, source, err := crdDirectory(workDir)
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{crdDir},
		ErrorIfCRDPathMissing:    true,
		Scheme:                   scheme,
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	// envtest prefers KUBEBUILDER_ASSETS over BinaryAssetsDirectory; the
	// directory the caller chose wins.
	if err := os.Setenv("KUBEBUILDER_ASSETS", assets); err != nil {
		return nil, err
	}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	if err := installAdmission(cfg, scheme); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &ControlPlane{Config: cfg, Kubeconfig: env.KubeConfig, CRDSource: source, env: env}, nil
}

// installAdmission creates the operator's admission policies
// (config/admission), as its install does: without them an autosaved
// query's creator could be forged on the demo's cluster.
func installAdmission(cfg *rest.Config, scheme *runtime.Scheme) error {
	pol, bind, err := admission.CreatedBy()
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, o := range []client.Object{pol, bind} {
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("install the admission policy %s: %w", o.GetName(), err)
		}
	}
	return nil
}

func crdDirectory(workDir string) (dir, source string, err error) {
	if wd, err := os.Getwd(); err == nil {
		if root := RepoRoot(wd); root != "" {
			d := filepath.Join(root, "config", "crd", "bases")
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				return d, d, nil
			}
		}
	}
	d := filepath.Join(workDir, "crds")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", "", err
	}
	entries, err := fs.Glob(crdFS, "crds/*.yaml")
	if err != nil {
		return "", "", err
	}
	for _, e := range entries {
		b, err := crdFS.ReadFile(e)
		if err != nil {
			return "", "", err
		}
		if err := os.WriteFile(filepath.Join(d, filepath.Base(e)), b, 0o644); err != nil {
			return "", "", err
		}
	}
	return d, "the copy embedded in this binary", nil
}

// WriteKubeconfig writes the control plane's kubeconfig to path (mode 0600:
// it holds a client key).
func (c *ControlPlane) WriteKubeconfig(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, c.Kubeconfig, 0o600)
}

// Stop stops the API server and etcd and removes their data.
func (c *ControlPlane) Stop() error {
	return c.env.Stop()
}

// SampleTraces returns the MessageTraces of config/samples, in file name
// order, with the sample file each came from.
func SampleTraces() ([]v1alpha1.MessageTrace, []string, error) {
	var entries []string
	for _, pattern := range []string{"*.yaml", "default-queries/traces/*.yaml"} {
		m, err := fs.Glob(samples.FS, pattern)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, m...)
	}
	var out []v1alpha1.MessageTrace
	var files []string
	for _, name := range entries {
		b, err := samples.FS.ReadFile(name)
		if err != nil {
			return nil, nil, err
		}
		for _, doc := range splitYAML(b) {
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", name, err)
			}
			if meta.Kind != "MessageTrace" || meta.APIVersion != v1alpha1.GroupVersion.String() {
				continue
			}
			var mt v1alpha1.MessageTrace
			if err := yaml.UnmarshalStrict(doc, &mt); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", name, err)
			}
			out = append(out, mt)
			files = append(files, name)
		}
	}
	return out, files, nil
}

func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range strings.Split("\n"+string(b), "\n---") {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}
