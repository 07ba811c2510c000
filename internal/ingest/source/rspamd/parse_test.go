package rspamd

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name, msg string
		want      Result
		ok        bool
	}{
		{"syslog, add header, options with commas and braces",
			"<2b4ee5>; proxy; rspamd_task_write_log: id: <m1@x.example>, qid: <4F1A2B3C4D>, ip: 203.0.113.25, from: <s@x.example>, (default: T (add header): [14.20/15.00] [GTUBE(0.00){},R_SPF_NA(0.00){no SPF record;},MIME_TRACE(0.00){0:+,1:~;},BAYES_SPAM(5.10){99.99%;}]), len: 1234, time: 56.7ms, dns req: 2, digest: <abc>, rcpts: <a@lab.test,b@lab.test>, mime_rcpt: <a@lab.test>,",
			Result{MessageID: "m1@x.example", QueueID: "4F1A2B3C4D", IP: "203.0.113.25", From: "s@x.example", Spam: true, Action: "add header",
				Score: "14.20", Required: "15.00", Symbols: []string{"GTUBE(0.00)", "R_SPF_NA(0.00)", "MIME_TRACE(0.00)", "BAYES_SPAM(5.10)"},
				Rcpts: []string{"a@lab.test", "b@lab.test"}}, true},
		{"rspamd's own file, no qid, no action, no symbol options (log_format without params)",
			"#4711(rspamd_proxy) <a1b2c3>; proxy; rspamd_task_write_log: id: <undef>, ip: 192.0.2.1, (default: F (no action): [-0.10/15.00] [MIME_GOOD(-0.10),ARC_NA(0.00)]), len: 10, time: 1ms, dns req: 0",
			Result{IP: "192.0.2.1", Action: "no action", Score: "-0.10", Required: "15.00", Symbols: []string{"MIME_GOOD(-0.10)", "ARC_NA(0.00)"}}, true},
		{"soft reject", "<x>; task; rspamd_task_write_log: id: <m@x>, qid: <ABCDE12345>, (default: T (soft reject): [6.00/15.00] [RATELIMITED(6.00){x}]), len: 1",
			Result{MessageID: "m@x", QueueID: "ABCDE12345", Spam: true, Action: "soft reject", Score: "6.00", Required: "15.00", Symbols: []string{"RATELIMITED(6.00)"}}, true},
		{"another line", "<x>; lua; greylist.lua:123: greylisted until ...", Result{}, false},
		{"truncated", "<x>; task; rspamd_task_write_log: id: <m@x>, (default: T", Result{}, false},
	}
	for _, c := range cases {
		got, ok := Parse(c.msg)
		if ok != c.ok || (ok && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("%s:\n got %+v %v\nwant %+v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

func TestTop(t *testing.T) {
	top, more := Top([]string{"A(0.00)", "B(-3.00)", "C(1.50)", "D(3.00)", "E(0.10)"}, 3)
	if !reflect.DeepEqual(top, []string{"B(-3.00)", "D(3.00)", "C(1.50)"}) || more != 2 {
		t.Errorf("Top: %v, %d more", top, more)
	}
}

func TestScanEvent(t *testing.T) {
	r, _ := Parse("<x>; task; rspamd_task_write_log: id: <m@x>, ip: 2001:db8::1, (default: T (reject): [16.00/15.00] [GTUBE(16.00)]), len: 1")
	e := ScanEvent(r)
	if e.Action != "reject" || e.Score != "16.00/15.00" || e.ClientIP != "2001:db8::1" || e.Detail != "rspamd: reject, score 16.00 (reject at 15.00); symbols: GTUBE(16.00)" {
		t.Errorf("%+v", e)
	}
}
