package server

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// BenchmarkLiveIngest is the live ingester end to end on the real log,
// without and with the write-ahead log: one op sends the whole log and
// stops the server, which returns once every event is stored and the state
// saved. http: 4 senders POST batches of 1,000 lines (each answered 204
// once stored, or once in the log and on disk); tcp: one syslog connection
// (with the log, each chunk read is on disk before the next is read).
func BenchmarkLiveIngest(b *testing.B) {
	data := readLogsums(b)
	for _, transport := range []string{"http", "tcp"} {
		for _, withWAL := range []bool{false, true} {
			name := transport + "/nowal"
			if withWAL {
				name = transport + "/wal"
			}
			b.Run(name, func(b *testing.B) { benchLive(b, data, transport, withWAL) })
		}
	}
}

func benchLive(b *testing.B, data []byte, transport string, withWAL bool) {
	n := lineCount(data)
	b.SetBytes(int64(len(data)))
	var fsyncs uint64
	var fsyncSecs float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		log := asHost(data, fmt.Sprintf("h%d-%d", i, time.Now().UnixNano()))
		dir := b.TempDir()
		o := Options{SyslogTCP: "127.0.0.1:0", HTTP: "127.0.0.1:0", InsecureNoAuth: true,
			Pipeline: PipelineOptions{Correlator: logsumsCfg, StateFile: filepath.Join(dir, "state.json")}}
		if withWAL {
			o.Pipeline.WALDir = filepath.Join(dir, "wal")
		}
		r := start(b, openStore(b), o)
		b.StartTimer()
		switch transport {
		case "http":
			sendHTTP(b, r.s.Addr("http").String(), log, 1000, 4)
		default:
			c, err := net.Dial("tcp", r.s.Addr("tcp").String())
			if err != nil {
				b.Fatal(err)
			}
			w := bufio.NewWriterSize(c, 64<<10)
			if _, err := w.Write(log); err != nil {
				b.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			c.Close()
			// every line read before the server stops (a stop cuts connections)
			for r.s.Metrics.linesRead("tcp") < float64(n) {
				time.Sleep(time.Millisecond)
			}
		}
		r.stop(b)
		b.StopTimer()
		var m dto.Metric
		_ = r.s.Metrics.WALFsync.Write(&m)
		fsyncs += m.GetHistogram().GetSampleCount()
		fsyncSecs += m.GetHistogram().GetSampleSum()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(fsyncs)/float64(b.N), "fsyncs/op")
	if fsyncs > 0 {
		b.ReportMetric(fsyncSecs/float64(fsyncs)*1000, "ms/fsync")
	}
}

// linesRead is the lines_read_total of a transport.
func (m *Metrics) linesRead(transport string) float64 {
	var d dto.Metric
	_ = m.LinesRead.WithLabelValues(transport).Write(&d)
	return d.GetCounter().GetValue()
}

// sendHTTP posts data's lines in batches from senders goroutines, each
// batch retried until it is answered 2xx.
func sendHTTP(b *testing.B, addr string, data []byte, batch, senders int) {
	var bodies [][]byte
	for len(data) > 0 {
		end, k := 0, 0
		for ; k < batch && end < len(data); k++ {
			i := bytes.IndexByte(data[end:], '\n')
			if i < 0 {
				end = len(data)
				break
			}
			end += i + 1
		}
		bodies = append(bodies, data[:end])
		data = data[end:]
	}
	next := make(chan []byte)
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range next {
				for {
					resp, err := http.Post("http://"+addr+"/ingest", "text/plain", bytes.NewReader(body))
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode/100 == 2 {
							break
						}
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	for _, body := range bodies {
		next <- body
	}
	close(next)
	wg.Wait()
}
