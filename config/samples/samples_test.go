package samples_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m, nil) }

// build runs `kubectl kustomize dir` and returns the objects.
func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out
}

func addresses(u *unstructured.Unstructured) []string {
	var out []string
	for _, path := range [][]string{
		{"spec", "senderAddresses"}, {"spec", "recipientAddresses"},
		{"spec", "template", "spec", "senderAddresses"}, {"spec", "template", "spec", "recipientAddresses"},
		{"spec", "template", "spec", "notify", "email", "to"},
	} {
		v, _, _ := unstructured.NestedStringSlice(u.Object, path...)
		out = append(out, v...)
	}
	return out
}

// Every kustomization of config/samples builds, the default queries come
// out as five MessageTraces and five MessageTraceSchedules for the primary
// domain, and the domain ConfigMap (local-config) is never output.
func TestKustomizationsBuild(t *testing.T) {
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "kustomization.yaml" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte("kind: Component")) { // a component builds only inside a kustomization
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 4 {
		t.Errorf("kustomizations %v: want config/samples, default-queries and its traces and schedules at least", dirs)
	}
	for _, dir := range dirs {
		objs := build(t, dir)
		if len(objs) == 0 {
			t.Errorf("%s: no objects", dir)
		}
		for _, o := range objs {
			if o.GetKind() == "ConfigMap" {
				t.Errorf("%s: outputs ConfigMap %s (it is local-config)", dir, o.GetName())
			}
		}
	}
	kinds := map[string]int{}
	for _, o := range build(t, "default-queries") {
		kinds[o.GetKind()]++
		for _, a := range addresses(o) {
			if !strings.HasSuffix(a, "@example.com") {
				t.Errorf("%s %s: address %q is not in the primary domain", o.GetKind(), o.GetName(), a)
			}
		}
	}
	if kinds["MessageTrace"] != 5 || kinds["MessageTraceSchedule"] != 5 {
		t.Errorf("default-queries builds %v, want 5 MessageTraces and 5 MessageTraceSchedules", kinds)
	}
}

// A team's own kustomization sets its primary domain once and gets every
// default query for it: what the README tells them to write.
func TestPrimaryDomainIsAParameter(t *testing.T) {
	here, err := filepath.Abs("default-queries")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel := func(p string) string {
		r, err := filepath.Rel(dir, filepath.Join(here, p))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("domain.yaml", `apiVersion: v1
kind: ConfigMap
metadata:
  name: mailtrace-primary-domain
  annotations:
    config.kubernetes.io/local-config: "true"
data:
  domain: contoso.example
  postmaster: mail-team@contoso.example
`)
	write("kustomization.yaml", "namespace: mail\nresources:\n  - domain.yaml\n  - "+rel("traces")+"\n  - "+rel("schedules")+
		"\ncomponents:\n  - "+rel("primary-domain")+"\n")
	objs := build(t, dir)
	var n int
	for _, o := range objs {
		if o.GetNamespace() != "mail" {
			t.Errorf("%s %s in namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
		}
		for _, a := range addresses(o) {
			n++
			if !strings.HasSuffix(a, "@contoso.example") {
				t.Errorf("%s %s: address %q, want the domain contoso.example", o.GetKind(), o.GetName(), a)
			}
		}
	}
	if n != 7 || len(objs) != 10 {
		t.Errorf("%d objects with %d addresses, want 10 with 7", len(objs), n)
	}
}

// Every YAML file of config/samples (every document of it) applies cleanly
// against the CRDs, and so does the output of the kustomizations.
func TestSamplesApply(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	apply := func(src string, u *unstructured.Unstructured) {
		t.Helper()
		u.SetNamespace(ns)
		if err := env.Client.Patch(ctx, u, client.Apply, client.FieldOwner("samples-test"), client.ForceOwnership); err != nil {
			t.Errorf("%s: %s %s: %v", src, u.GetKind(), u.GetName(), err)
		}
	}
	var files int
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") || filepath.Base(path) == "kustomization.yaml" {
			return err
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, doc := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			u := &unstructured.Unstructured{}
			if err := yaml.UnmarshalStrict(doc, &u.Object); err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			apply(path, u)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 12 {
		t.Errorf("applied %d files, want every sample", files)
	}
	for _, o := range build(t, ".") {
		apply("kustomize build config/samples", o)
	}
}
