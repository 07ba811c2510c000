// Package docs holds the user documentation; its tests keep it in step with
// the API.
package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// apiReasons returns every constant of type Reason declared in api/v1alpha1.
func apiReasons(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("../api/v1alpha1/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in api/v1alpha1 (%v)", err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
					continue
				}
				for i, n := range vs.Names {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						out[n.Name] = strings.Trim(lit.Value, "\"`")
					}
				}
			}
		}
	}
	return out
}

// Every condition reason of the API has its row in troubleshooting.md.
func TestTroubleshootingCoversEveryReason(t *testing.T) {
	b, err := os.ReadFile("troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	reasons := apiReasons(t)
	if len(reasons) < 20 {
		t.Fatalf("found only %d Reason constants in api/v1alpha1: the parser missed some", len(reasons))
	}
	for name, v := range reasons {
		if !strings.Contains(doc, "| `"+v+"` |") {
			t.Errorf("docs/troubleshooting.md has no row for %s (%q): add what it means and what to do", name, v)
		}
	}
}

// docs/reference.md is what the generator makes of the CRDs: regenerate it
// with `make docs` after `make manifests`.
func TestReferenceIsCurrent(t *testing.T) {
	want, err := Reference("../config/crd/bases")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("reference.md")
	if err != nil {
		t.Fatalf("%v: run make docs", err)
	}
	if string(got) != string(want) {
		t.Fatal("docs/reference.md is stale: run make docs (after make manifests) and commit it")
	}
	for _, kind := range []string{"MessageTrace", "MessageTraceSchedule", "ReportStore", "TracePolicy"} {
		if !strings.Contains(string(want), "\n## "+kind+"\n") {
			t.Errorf("the reference has no section for %s", kind)
		}
	}
}
