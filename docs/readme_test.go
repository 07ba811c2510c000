package docs

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/democmd"
	"github.com/mailtrace/mailtrace/internal/plugin"
	"github.com/mailtrace/mailtrace/internal/store/sqlite"
)

// README's recorded outputs come from a demo run (go run ./docs/readmegen)
// and its generated tables from make docs; these tests fail when what the
// code prints no longer has the structure README shows: the tables'
// columns, the demo's progress lines, the command trees, trace IDs, flag
// defaults.

func readReadme(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../" + ReadmeFile)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func recorded(t *testing.T, readme []byte, name string) []string {
	t.Helper()
	b, err := OutputBlock(readme, name)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(b) == "" {
		t.Fatalf("README's recorded output %s is empty: run go run ./docs/readmegen", name)
	}
	return strings.Split(strings.TrimSuffix(b, "\n"), "\n")
}

// The generated tables (reasons, commands) are what make docs makes of the
// API's reasons and the command trees.
func TestReadmeGeneratedTablesAreCurrent(t *testing.T) {
	ts, err := os.ReadFile("troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := ReadmeTables(ts)
	if err != nil {
		t.Fatal(err)
	}
	readme := readReadme(t)
	for name, want := range tables {
		got, err := GeneratedSection(readme, name)
		if err != nil {
			t.Errorf("%v: README must hold the generated table %s", err, name)
			continue
		}
		if got != want {
			t.Errorf("README's generated table %s is stale: run make docs and commit README.md\nREADME:\n%s\nwant:\n%s", name, got, want)
		}
	}
	// Every command of both trees has its row, ingest and download among them.
	for name, root := range map[string]*cobra.Command{
		"commands-mailtrace": cli.NewRootCommand(democmd.NewCommand()),
		"commands-kubectl":   plugin.NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}),
	} {
		table, _ := GeneratedSection(readme, name)
		n := 0
		for _, c := range root.Commands() {
			if c.IsAvailableCommand() && c.Runnable() {
				n++
				if !strings.Contains(table, "| `"+c.CommandPath()) {
					t.Errorf("README's %s table lacks %s", name, c.CommandPath())
				}
			}
		}
		if n < 5 {
			t.Errorf("%s has %d commands: the tree was not built", name, n)
		}
	}
}

// printerColumns returns the header kubectl prints for a kind: NAME and the
// CRD's printer columns (those of priority 0 unless wide).
func printerColumns(t *testing.T, plural string, wide bool) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "config", "crd", "bases", "mailtrace.io_"+plural+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	head := []string{"NAME"}
	for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
		if c.Priority == 0 || wide {
			head = append(head, strings.ToUpper(c.Name))
		}
	}
	return head
}

// columns splits a table line on runs of two or more blanks.
func columns(line string) []string {
	return regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
}

// demoFormats returns the lines the demo prints, as regular expressions
// made of the format strings of its fmt.Fprint* calls (internal/democmd/demo.go
// and demo_setup.go), anchored at the end only where the format ends its
// line (the progress line is printed in pieces), and the formats.
func demoFormats(t *testing.T) (res []*regexp.Regexp, src []string) {
	t.Helper()
	verb := regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z%]`)
	fset := token.NewFileSet()
	for _, f := range []string{"../internal/democmd/demo.go", "../internal/democmd/demo_setup.go"} {
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Fprintf" && sel.Sel.Name != "Fprintln") {
				return true
			}
			if id, ok := call.Args[0].(*ast.Ident); !ok || id.Name != "out" {
				return true
			}
			lit, ok := call.Args[1].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			if sel.Sel.Name == "Fprintln" {
				s += "\n"
			}
			pieces := strings.Split(s, "\n")
			for i, p := range pieces {
				if p == "" {
					continue
				}
				ends := i < len(pieces)-1 // a newline follows in the format itself
				var re strings.Builder
				if i > 0 || !strings.HasPrefix(s, " ") {
					re.WriteString("^")
				}
				last := 0
				for _, m := range verb.FindAllStringIndex(p, -1) {
					re.WriteString(regexp.QuoteMeta(p[last:m[0]]))
					if p[m[0]:m[1]] == "%%" {
						re.WriteString("%")
					} else {
						re.WriteString(".*?")
					}
					last = m[1]
				}
				re.WriteString(regexp.QuoteMeta(p[last:]))
				if strings.TrimSpace(verb.ReplaceAllString(p, "")) == "" {
					continue // only verbs: a table row (the aws s3 ls line)
				}
				if ends {
					re.WriteString("$")
				}
				res = append(res, regexp.MustCompile(re.String()))
				src = append(src, p)
			}
			return true
		})
	}
	if len(res) < 20 {
		t.Fatalf("found only %d demo output formats: the parser missed them", len(res))
	}
	return res, src
}

// The demo's recorded output has the lines the demo prints (no line the
// code no longer prints, every line it always prints) and the columns of
// the tables it prints, with paths relative to the checkout.
func TestReadmeDemoOutputMatchesTheDemo(t *testing.T) {
	lines := recorded(t, readReadme(t), "demo")
	formats, src := demoFormats(t)
	matched := make([]bool, len(formats))
	tables := []struct {
		intro *regexp.Regexp
		head  []string
	}{
		{regexp.MustCompile(`^\$ kubectl get mt$`), printerColumns(t, "messagetraces", false)},
		{regexp.MustCompile(`^\$ kubectl get mts$`), printerColumns(t, "messagetraceschedules", false)},
		{regexp.MustCompile(`^status\.rows of .*, as a table:$`), cli.TableHeaders()["mailtrace query"]},
		{regexp.MustCompile(`-o jsonpath='\{\.status\.details\}', as a table:$`), cli.TableHeaders()["kubectl mailtrace details"]},
		{regexp.MustCompile(`^\$ aws s3 ls `), nil}, // rows without a header
	}
	if !regexp.MustCompile(`^bin/mailtrace demo --assets \S+ --minio \S+$`).MatchString(lines[0]) {
		t.Errorf("the demo's output starts with %q, not the command make demo runs (bin/mailtrace demo --assets ... --minio ...)", lines[0])
	}
	inTable := false
	for i := 1; i < len(lines); i++ {
		l := lines[i]
		if regexp.MustCompile(`/work/|/home/|/root/|/tmp/`).MatchString(l) {
			t.Errorf("line %d holds an absolute path, not one relative to the checkout: %q", i+1, l)
		}
		if l == "" {
			inTable = false
			continue
		}
		if inTable {
			continue // a row
		}
		ok := false
		for j, re := range formats {
			if re.MatchString(l) {
				matched[j], ok = true, true
			}
		}
		if !ok {
			t.Errorf("line %d of the demo's output is no line the demo prints (internal/democmd/demo.go): %q", i+1, l)
		}
		for _, tb := range tables {
			if !tb.intro.MatchString(l) || i+1 == len(lines) {
				continue
			}
			inTable = true
			if tb.head == nil {
				continue
			}
			i++
			if got := columns(lines[i]); !slices.Equal(got, tb.head) {
				t.Errorf("the table after %q has the columns %q; the code prints %q", l, got, tb.head)
			}
		}
	}
	for j, ok := range matched {
		wait := strings.Contains(src[j], "Ctrl-C") || strings.Contains(src[j], "To keep exploring") || strings.Contains(src[j], "curl -H")
		if !ok && !wait && strings.TrimSpace(src[j]) != "" {
			t.Errorf("the demo prints %q (internal/cli), README's recorded output has no such line: run go run ./docs/readmegen", src[j])
		}
	}
}

// Every `kubectl get mt|mts [-o wide]` table in README has kubectl's
// columns for the CRD (the recorded -o wide one has REPORT).
func TestReadmeKubectlTablesHaveTheCRDsColumns(t *testing.T) {
	wide := recorded(t, readReadme(t), "get-mt-wide")
	if got, want := columns(wide[0]), printerColumns(t, "messagetraces", true); !slices.Equal(got, want) {
		t.Errorf("kubectl get mt -o wide: README has the columns %q; the CRD makes %q", got, want)
	}
	if !slices.Contains(printerColumns(t, "messagetraces", true), "REPORT") {
		t.Error("the MessageTrace CRD has no REPORT column")
	}
	lines := strings.Split(string(readReadme(t)), "\n")
	seen := 0
	for i, l := range lines[:len(lines)-1] {
		var want []string
		switch strings.TrimSpace(l) {
		case "$ kubectl get mt":
			want = printerColumns(t, "messagetraces", false)
		case "$ kubectl get mts":
			want = printerColumns(t, "messagetraceschedules", false)
		default:
			continue
		}
		seen++
		if got := columns(lines[i+1]); !slices.Equal(got, want) {
			t.Errorf("README line %d: %s prints %q, README says %q", i+2, l, want, got)
		}
	}
	if seen < 3 {
		t.Errorf("found %d kubectl get tables in README, want the demo's two and the schedule section's", seen)
	}
}

var hex20 = regexp.MustCompile(`^[0-9a-f]{20}$`)

// The recorded status of "A first MessageTrace" is a MessageTrace's spec
// and status as the API has them (every field known to the Go types, none
// lost), with the product's trace IDs.
func TestReadmeFirstTraceStatus(t *testing.T) {
	block := strings.Join(recorded(t, readReadme(t), "first-trace-status"), "\n")
	var raw map[string]any
	if err := yaml.Unmarshal([]byte(block), &raw); err != nil {
		t.Fatal(err)
	}
	var typed struct {
		Spec   v1alpha1.MessageTraceSpec   `json:"spec"`
		Status v1alpha1.MessageTraceStatus `json:"status"`
	}
	if err := yaml.UnmarshalStrict([]byte(block), &typed); err != nil {
		t.Fatalf("README's MessageTrace status has fields the API does not: %v", err)
	}
	b, err := json.Marshal(typed)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(raw, back) {
		t.Errorf("README's MessageTrace spec and status are not what the API types hold:\nREADME: %v\nAPI:    %v", raw, back)
	}
	if len(typed.Status.Rows) != 2 || typed.Status.ReturnedRows < 2 || !strings.Contains(block, "reason: Completed") {
		t.Errorf("want a succeeded trace and its first two rows; README has %d rows of %d", len(typed.Status.Rows), typed.Status.ReturnedRows)
	}
	for _, r := range typed.Status.Rows {
		if !hex20.MatchString(r.MessageTraceID) {
			t.Errorf("trace ID %q is not 20 hex characters, as the product makes them", r.MessageTraceID)
		}
	}
}

// The CSV sample has the columns `mailtrace query -o csv` writes.
func TestReadmeCSVSample(t *testing.T) {
	recs, err := csv.NewReader(strings.NewReader(strings.Join(recorded(t, readReadme(t), "query-csv"), "\n"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs[0], cli.SummaryCSVHeader) {
		t.Errorf("README's CSV header %q; mailtrace query -o csv writes %q", recs[0], cli.SummaryCSVHeader)
	}
	if len(recs) < 2 {
		t.Fatal("the CSV sample has no rows")
	}
	id := slices.Index(cli.SummaryCSVHeader, "network_message_id")
	for _, r := range recs[1:] {
		if len(r) != len(cli.SummaryCSVHeader) || !hex20.MatchString(r[id]) {
			t.Errorf("CSV row %q: want %d columns and a 20-hex network_message_id", r, len(cli.SummaryCSVHeader))
		}
	}
}

// The NDJSON sample is what `mailtrace events load` reads: every line loads.
func TestReadmeNDJSONSample(t *testing.T) {
	lines := recorded(t, readReadme(t), "events-ndjson")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var report bytes.Buffer
	res, err := cli.LoadEvents(ctx, st, strings.NewReader(strings.Join(lines, "\n")), 100, &report)
	if err != nil || res.Loaded != len(lines) || res.Skipped != 0 {
		t.Errorf("events load of README's sample: %+v, %v\n%s", res, err, report.String())
	}
	for _, l := range lines {
		var e struct {
			MessageTraceID string `json:"messageTraceId"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil || !hex20.MatchString(e.MessageTraceID) {
			t.Errorf("event %s: trace ID %q is not 20 hex characters (%v)", l, e.MessageTraceID, err)
		}
	}
}

// Trace IDs in README and in the commands' examples look like the
// product's: 20 hex characters.
func TestReadmeTraceIDs(t *testing.T) {
	text := string(readReadme(t))
	for _, root := range []*cobra.Command{cli.NewRootCommand(democmd.NewCommand()), plugin.NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})} {
		var walk func(c *cobra.Command)
		walk = func(c *cobra.Command) {
			text += "\n" + c.Example
			for _, s := range c.Commands() {
				walk(s)
			}
		}
		walk(root)
	}
	n := 0
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`--trace-id[ =]([^\s\]]+)`),
		regexp.MustCompile(`messageTraceId: ([^\s,}]+)`),
		regexp.MustCompile(`"messageTraceId":"([^"]*)"`),
		regexp.MustCompile(`message trace ([0-9a-zA-Z]+)\)`),
	} {
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			n++
			if id := m[1]; !hex20.MatchString(id) && id != "ID" {
				t.Errorf("%q: the trace ID %q is not 20 hex characters, as the product makes them", m[0], id)
			}
		}
	}
	if n < 8 {
		t.Errorf("found %d trace IDs in README and the examples: the patterns missed them", n)
	}
}

// The defaults README gives for kubectl mailtrace's flags are the flags'.
func TestReadmeFlagDefaults(t *testing.T) {
	text := string(readReadme(t))
	root := plugin.NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	for _, tc := range []struct{ cmd, flag string }{{"download", "ttl"}, {"run", "timeout"}} {
		c, _, err := root.Find([]string{tc.cmd})
		if err != nil {
			t.Fatal(err)
		}
		want, err := time.ParseDuration(c.Flags().Lookup(tc.flag).DefValue)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile("`--" + tc.flag + "`[^`]{0,12}default ([0-9a-z]+)").FindStringSubmatch(text)
		if m == nil {
			t.Errorf("README does not give the default of kubectl mailtrace %s --%s (%s)", tc.cmd, tc.flag, want)
			continue
		}
		if got, err := time.ParseDuration(m[1]); err != nil || got != want {
			t.Errorf("README: kubectl mailtrace %s --%s defaults to %s; the flag's default is %s", tc.cmd, tc.flag, m[1], want)
		}
	}
}
