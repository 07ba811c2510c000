package server

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// otlpEmptyRecords is a protobuf ExportLogsServiceRequest of about size
// bytes: one resource, one scope, and as many log records as fit, each
// holding n empty attributes (n = 0: empty records, 2 bytes each).
func otlpEmptyRecords(size, attrs int) []byte {
	var rec []byte
	for i := 0; i < attrs; i++ {
		rec = protowire.AppendTag(rec, 6, protowire.BytesType)
		rec = protowire.AppendBytes(rec, nil)
	}
	var scope []byte
	for len(scope)+len(rec)+8 < size-16 {
		scope = protowire.AppendTag(scope, 2, protowire.BytesType)
		scope = protowire.AppendBytes(scope, rec)
	}
	var rl []byte
	rl = protowire.AppendTag(rl, 2, protowire.BytesType)
	rl = protowire.AppendBytes(rl, scope)
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	return protowire.AppendBytes(req, rl)
}

// The real `mailtrace ingest` under hostile OTLP senders, as
// TestHostileSendersRSS does for the other endpoints (one process per
// case, a legitimate sender posting throughout; every legitimate message
// stored, peak RSS under 256 MiB). Figures in docs/benchmarks.md.
//
//	MAILTRACE_HOSTILE_RSS=1 go test -count=1 -v -run '^TestHostileOTLPRSS$' ./internal/ingest/server/
func TestHostileOTLPRSS(t *testing.T) {
	bin := os.Getenv(EnvHostileRSS)
	if bin == "" {
		t.Skipf("%s is not set: this test builds and runs the mailtrace binary (%s=1, or the path of one)", EnvHostileRSS, EnvHostileRSS)
	}
	dir := t.TempDir()
	if bin == "1" {
		bin = filepath.Join(dir, "mailtrace")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/mailtrace/mailtrace/cmd/mailtrace").CombinedOutput()
		if err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	p := newPKI(t)
	var mu sync.Mutex
	answers := map[int]int{}
	post := func(h, ctype, enc string, body []byte) {
		req, _ := http.NewRequest("POST", "http://"+h+OTLPLogsPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		if enc != "" {
			req.Header.Set("Content-Encoding", enc)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		mu.Lock()
		answers[resp.StatusCode]++
		mu.Unlock()
		if resp.StatusCode/100 == 2 && len(body) > 1<<20 {
			t.Errorf("a hostile OTLP body of %d bytes answered %d", len(body), resp.StatusCode)
		}
	}
	four := func(f func()) {
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		}
		wg.Wait()
	}
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	_, _ = zw.Write(otlpEmptyRecords(1<<30, 0))
	_ = zw.Close()
	jsonEmpty := func(size int) []byte {
		b := []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{}`)
		for len(b)+8 < size {
			b = append(b, ",{}"...)
		}
		return append(b, "]}]}]}"...)
	}
	cases := []rssCase{
		{name: "OTLP: none (the legitimate sender alone)", legit: "http", attack: func(*testing.T, string, string, *pki) {}},
		{name: "OTLP: 4 x 16 MiB of empty log records (8M each), protobuf, at once", legit: "http", attack: func(t *testing.T, _, h string, _ *pki) {
			body := otlpEmptyRecords(16<<20, 0)
			four(func() { post(h, ctProtobuf, "", body) })
		}},
		{name: "OTLP: 4 x 16 MiB of 99,000 records of empty attributes, protobuf, at once", legit: "http", attack: func(t *testing.T, _, h string, _ *pki) {
			body := otlpEmptyRecords(16<<20, 84)
			four(func() { post(h, ctProtobuf, "", body) })
		}},
		{name: "OTLP: 16 x 100,000 empty records (decoded, 17 MB each), protobuf, 4 at a time", legit: "http", attack: func(t *testing.T, _, h string, _ *pki) {
			body := otlpEmptyRecords(200000, 0)
			for i := 0; i < 4; i++ {
				four(func() { post(h, ctProtobuf, "", body) })
			}
		}},
		{name: "OTLP: 4 x 16 MiB of empty log records, JSON, at once", legit: "http", attack: func(t *testing.T, _, h string, _ *pki) {
			body := jsonEmpty(16 << 20)
			four(func() { post(h, ctJSON, "", body) })
		}},
		{name: "OTLP: 4 gzip bombs (1 GiB of empty records inflated each) at once", legit: "http", attack: func(t *testing.T, _, h string, _ *pki) {
			four(func() { post(h, ctProtobuf, "gzip", bomb.Bytes()) })
		}},
		{name: "OTLP: 4 x 16 MiB of values nested 4M deep, protobuf, at once", legit: "http", attack: func(t *testing.T, _, h string, _ *pki) {
			body := otlpNested(16 << 20)
			four(func() { post(h, ctProtobuf, "", body) })
		}},
	}
	var report []string
	for i, c := range cases {
		var cells []string
		for _, wal := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/wal=%v", i, wal), func(t *testing.T) {
				k := 100 + 2*i + map[bool]int{false: 0, true: 1}[wal]
				c := c
				if wal {
					c.args = append([]string{"--state-file", filepath.Join(dir, fmt.Sprintf("case%d.state", k))}, c.args...)
				}
				base, peak, sent := runRSSCase(t, bin, dir, p, c, k)
				cells = append(cells, fmt.Sprintf("%d | %d MiB | %d MiB", sent, base>>20, peak>>20))
				t.Logf("%s (write-ahead log: %v): %d legitimate messages, all stored; RSS %d MiB after start, peak %d MiB", c.name, wal, sent, base>>20, peak>>20)
				if peak > hostileRSSBound {
					t.Errorf("%s: peak RSS %d MiB, over %d MiB", c.name, peak>>20, hostileRSSBound>>20)
				}
			})
		}
		report = append(report, "| "+c.name+" | "+strings.Join(cells, " | ")+" |")
	}
	t.Logf("answers to the hostile OTLP requests: %v", answers)
	t.Log("| attack | legitimate messages, all stored | RSS after start | peak RSS (VmHWM) | with --state-file (write-ahead log): messages | RSS after start | peak RSS |\n|---|---|---|---|---|---|---|\n" + strings.Join(report, "\n"))
}

// otlpNested is a request of about size bytes whose one record's body is
// an AnyValue{array_value{values: AnyValue{array_value{...}}}}, nested as
// deep as it fits (2 levels of message per 4 bytes at the bottom), built
// from the inside out, prefixes written reversed.
func otlpNested(size int) []byte {
	var rev []byte
	n := 0
	prefix := func(field protowire.Number) {
		p := protowire.AppendVarint(protowire.AppendTag(nil, field, protowire.BytesType), uint64(n))
		for i := len(p) - 1; i >= 0; i-- {
			rev = append(rev, p[i])
		}
		n += len(p)
	}
	for n < size-64 {
		prefix(1) // ArrayValue.values
		prefix(5) // AnyValue.array_value
	}
	prefix(5) // LogRecord.body
	prefix(2) // ScopeLogs.log_records
	prefix(2) // ResourceLogs.scope_logs
	prefix(1) // ExportLogsServiceRequest.resource_logs
	b := make([]byte, len(rev))
	for i := range rev {
		b[len(rev)-1-i] = rev[i]
	}
	return b
}
