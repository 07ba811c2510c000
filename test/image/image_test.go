// Package image_test checks the container image's recipe without a Docker
// engine: the Dockerfile's invariants (multi-stage, CGO off, one binary,
// non-root, pinned bases), that .dockerignore keeps every file the build
// needs, and that the binary really builds static with CGO_ENABLED=0.
package image_test

import (
	"bufio"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

func root(t testing.TB) string {
	t.Helper()
	r, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type instruction struct {
	cmd  string // upper case
	args string
	line int
}

type stage struct {
	from, name string
	ins        []instruction
}

// parseDockerfile splits the Dockerfile into instructions (joining
// continuation lines, dropping comments) and stages, with FROM's image
// resolved from the global ARG defaults.
func parseDockerfile(t *testing.T, path string) (globalArgs map[string]string, stages []*stage) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ins []instruction
	sc := bufio.NewScanner(f)
	cur, start, n := "", 0, 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur == "" {
			start = n
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cur += line
		cmd, args, _ := strings.Cut(cur, " ")
		ins = append(ins, instruction{strings.ToUpper(cmd), strings.TrimSpace(args), start})
		cur = ""
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	globalArgs = map[string]string{}
	expand := func(s string) string {
		return os.Expand(s, func(k string) string { return globalArgs[k] })
	}
	for _, in := range ins {
		switch {
		case in.cmd == "FROM":
			fields := strings.Fields(in.args)
			var img, name string
			for i := 0; i < len(fields); i++ {
				switch {
				case strings.HasPrefix(fields[i], "--"):
				case strings.EqualFold(fields[i], "AS") && i+1 < len(fields):
					name = fields[i+1]
					i++
				default:
					img = expand(fields[i])
				}
			}
			stages = append(stages, &stage{from: img, name: name})
		case len(stages) == 0:
			if in.cmd != "ARG" {
				t.Fatalf("line %d: %s before the first FROM", in.line, in.cmd)
			}
			k, v, _ := strings.Cut(in.args, "=")
			globalArgs[k] = strings.Trim(v, `"`)
		default:
			s := stages[len(stages)-1]
			s.ins = append(s.ins, in)
		}
	}
	return globalArgs, stages
}

func (s *stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

var (
	tagRe    = regexp.MustCompile(`^[^@]+:([A-Za-z0-9_.-]+)(@sha256:[a-f0-9]{64})?$`)
	goModRe  = regexp.MustCompile(`(?m)^go (\d+\.\d+)`)
	goImgRe  = regexp.MustCompile(`^golang:(\d+\.\d+)\.\d+(-[a-z]+)?(@sha256:[a-f0-9]{64})?$`)
	finalRe  = regexp.MustCompile(`^(scratch|gcr\.io/distroless/static(-debian\d+)?:(nonroot|latest-nonroot|debug-nonroot)(@sha256:[a-f0-9]{64})?)$`)
	userRe   = regexp.MustCompile(`^(\d+)(:(\d+))?$`)
	goBuild  = regexp.MustCompile(`\bgo build\b`)
	ldflagRe = regexp.MustCompile(`-ldflags\s+"[^"]*-s -w[^"]*"`)
)

func TestDockerfile(t *testing.T) {
	r := root(t)
	_, stages := parseDockerfile(t, filepath.Join(r, "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("%d stages; want a builder and a final stage", len(stages))
	}
	// Pinned bases: an explicit version tag (optionally a digest), never latest.
	for _, s := range stages {
		if s.from == "scratch" {
			continue
		}
		m := tagRe.FindStringSubmatch(s.from)
		if m == nil || m[1] == "latest" {
			t.Errorf("FROM %q: want a pinned tag (image:version[@sha256:...]), not latest or none", s.from)
		}
	}
	mod, err := os.ReadFile(filepath.Join(r, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVer := goModRe.FindSubmatch(mod)
	builder := stages[0]
	if m := goImgRe.FindStringSubmatch(builder.from); m == nil {
		t.Errorf("builder FROM %q: want golang:<major.minor.patch>[-variant]", builder.from)
	} else if goVer == nil || m[1] != string(goVer[1]) {
		t.Errorf("builder Go %s, go.mod says go %s", m[1], goVer[1])
	}
	if builder.name == "" {
		t.Error("the builder stage has no name (FROM ... AS builder)")
	}
	// CGO off, and the build: -trimpath, stripped, ./cmd/mailtrace.
	cgoOff := false
	for _, in := range builder.all("ENV") {
		if regexp.MustCompile(`(^|\s)CGO_ENABLED=0(\s|$)`).MatchString(in.args) {
			cgoOff = true
		}
	}
	builds := 0
	for _, in := range builder.all("RUN") {
		if !goBuild.MatchString(in.args) {
			continue
		}
		builds++
		if strings.Contains(in.args, "CGO_ENABLED=0") {
			cgoOff = true
		}
		if strings.Contains(in.args, "CGO_ENABLED=1") {
			t.Errorf("line %d: CGO_ENABLED=1", in.line)
		}
		for _, want := range []string{"-trimpath", "./cmd/mailtrace"} {
			if !strings.Contains(in.args, want) {
				t.Errorf("line %d: go build without %s: %s", in.line, want, in.args)
			}
		}
		if !ldflagRe.MatchString(in.args) {
			t.Errorf(`line %d: go build without -ldflags "-s -w ...": %s`, in.line, in.args)
		}
	}
	if builds != 1 {
		t.Errorf("%d go build commands in the builder; want 1", builds)
	}
	if !cgoOff {
		t.Error("CGO_ENABLED=0 not set in the builder")
	}
	// The final stage: distroless static nonroot (or scratch), exactly one
	// file copied from the builder, nothing run, a numeric non-root USER, an
	// exec-form ENTRYPOINT of that file.
	final := stages[len(stages)-1]
	if !finalRe.MatchString(final.from) {
		t.Errorf("final FROM %q: want gcr.io/distroless/static[-debianN]:nonroot or scratch", final.from)
	}
	if runs := final.all("RUN"); len(runs) != 0 {
		t.Errorf("the final stage runs commands (line %d): it has no shell", runs[0].line)
	}
	copies := append(final.all("COPY"), final.all("ADD")...)
	if len(copies) != 1 {
		t.Fatalf("final stage has %d COPY/ADD; want exactly one (the binary)", len(copies))
	}
	f := strings.Fields(copies[0].args)
	if len(f) != 3 || f[0] != "--from="+builder.name || strings.ContainsAny(f[1], "*?") {
		t.Fatalf("final COPY %q: want COPY --from=%s <one file> <dest>", copies[0].args, builder.name)
	}
	bin := f[2]
	users := final.all("USER")
	if len(users) != 1 {
		t.Fatalf("final stage has %d USER; want one", len(users))
	}
	if m := userRe.FindStringSubmatch(users[0].args); m == nil || m[1] == "0" || m[3] == "0" {
		t.Errorf("USER %q: want a numeric non-root uid[:gid] (65532:65532), so runAsNonRoot can verify it", users[0].args)
	} else if m[1] != "65532" {
		t.Errorf("USER %q: want 65532 (distroless nonroot, the chart's runAsUser)", users[0].args)
	}
	eps := final.all("ENTRYPOINT")
	if len(eps) != 1 || eps[0].args != `["`+bin+`"]` {
		t.Errorf("ENTRYPOINT %v: want [%q] in exec form", eps, bin)
	}
}

// dockerignored reports whether .dockerignore's patterns exclude path (a
// slash-separated path relative to the context).
func dockerignored(t *testing.T, patterns []string, path string) bool {
	t.Helper()
	parts := strings.Split(path, "/")
	for _, p := range patterns {
		if strings.HasPrefix(p, "!") {
			t.Fatalf(".dockerignore exception %q: not supported by this test", p)
		}
		if rest, ok := strings.CutPrefix(p, "**/"); ok {
			for i := range parts {
				if ok, _ := filepath.Match(rest, strings.Join(parts[i:], "/")); ok {
					return true
				}
				if ok, _ := filepath.Match(rest, parts[i]); ok {
					return true
				}
			}
			continue
		}
		for i := 1; i <= len(parts); i++ {
			if ok, _ := filepath.Match(p, strings.Join(parts[:i], "/")); ok {
				return true
			}
		}
	}
	return false
}

// Every file `go build ./cmd/mailtrace` reads (go.mod, go.sum, the Go files
// and embedded files of every package of this module it links) is in the
// build context, and the heavy or secret-prone things are not.
func TestDockerignore(t *testing.T) {
	r := root(t)
	b, err := os.ReadFile(filepath.Join(r, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimPrefix(strings.TrimSuffix(l, "/"), "/"))
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{.Dir}}|{{join .GoFiles ","}}|{{join .EmbedFiles ","}}{{end}}{{end}}`, "./cmd/mailtrace")
	cmd.Dir = r
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	needed := []string{"go.mod", "go.sum"}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, "|")
		rel, err := filepath.Rel(r, f[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, list := range f[1:] {
			for _, name := range strings.Split(list, ",") {
				if name != "" {
					needed = append(needed, filepath.ToSlash(filepath.Join(rel, name)))
				}
			}
		}
	}
	if len(needed) < 20 {
		t.Fatalf("only %d files found for the build: %v", len(needed), needed)
	}
	for _, p := range needed {
		if dockerignored(t, patterns, p) {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
	for _, p := range []string{".git/config", "bin/mailtrace", ".demo/mailtrace.db", "x.db", "charts/mailtrace/values.yaml"} {
		if !dockerignored(t, patterns, p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
}

// The binary builds with CGO_ENABLED=0 and the Dockerfile's flags, is
// statically linked (no ELF interpreter, no shared libraries), and runs.
func TestStaticBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	r := root(t)
	out := filepath.Join(t.TempDir(), "mailtrace")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags",
		"-s -w -X github.com/mailtrace/mailtrace/internal/cli.Version=v0.0.0-imagetest", "-o", out, "./cmd/mailtrace")
	cmd.Dir = r
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./cmd/mailtrace: %v\n%s", err, b)
	}
	bi, err := buildinfo.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings CGO_ENABLED=%q -trimpath=%q", settings["CGO_ENABLED"], settings["-trimpath"])
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/mattn/go-sqlite3" {
			t.Error("the binary links github.com/mattn/go-sqlite3 (cgo); the store uses modernc.org/sqlite")
		}
	}
	ef, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has an ELF interpreter: it is dynamically linked")
		}
	}
	if libs, _ := ef.ImportedLibraries(); len(libs) != 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	if runtime.GOOS == "linux" {
		v, err := exec.Command(out, "version").CombinedOutput()
		if err != nil || !strings.Contains(string(v), "v0.0.0-imagetest") {
			t.Errorf("mailtrace version: %v: %s", err, v)
		}
	}
}
