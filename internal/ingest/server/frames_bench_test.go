package server

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/mailtrace/mailtrace/internal/ingest"
	"github.com/mailtrace/mailtrace/internal/ingest/syslog"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// frames5424 is the benchmark log as a syslog sender would send it over
// TLS: each line an octet-counted RFC 5424 frame ("<22>1 TS HOST APP PID -
// [meta] MSG").
func frames5424(tb testing.TB) (stream []byte, n int) {
	var b bytes.Buffer
	for _, l := range strings.Split(string(readLogsums(tb)), "\n") {
		ts, rest, ok1 := strings.Cut(l, " ")
		host, rest, ok2 := strings.Cut(rest, " ")
		tag, msg, ok3 := strings.Cut(rest, ": ")
		if !ok1 || !ok2 || !ok3 {
			continue
		}
		prog, pid, _ := strings.Cut(strings.TrimSuffix(tag, "]"), "[")
		if pid == "" {
			pid = "-"
		}
		f := fmt.Sprintf("<22>1 %s %s %s %s - [meta sequenceId=\"%d\"] %s", ts, host, prog, pid, n, msg)
		b.WriteString(strconv.Itoa(len(f)))
		b.WriteByte(' ')
		b.WriteString(f)
		n++
	}
	return b.Bytes(), n
}

// BenchmarkFrames5424: a TLS syslog connection's read loop and the
// correlator, without the network and the store: frames decoded, their
// RFC 5424 header read, correlated. One op is the whole log. fields is what
// the server does; text rewrites each frame into a line first and has the
// correlator split it again, as the server did before the fields path.
func BenchmarkFrames5424(b *testing.B) {
	b.Run("fields", func(b *testing.B) { benchFrames(b, false) })
	b.Run("text", func(b *testing.B) { benchFrames(b, true) })
}

func benchFrames(b *testing.B, asText bool) {
	stream, n := frames5424(b)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := ingest.NewCorrelator(logsumsCfg, func([]mailflow.Event) error { return nil })
		d := syslog.NewDecoder(bytes.NewReader(stream), 0)
		for {
			frame, _, err := d.Next()
			if frame != nil {
				switch m := syslog.ParseFrame(string(frame)); {
				case m.Fields != nil && !asText:
					_ = c.FeedFields(m.Fields)
				default:
					_ = c.Feed(m.Text())
				}
			}
			if err != nil {
				break
			}
		}
		if st := c.Stats(); st.Lines != int64(n) || st.Events == 0 {
			b.Fatalf("%+v", st)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/frame")
}
