package amavis

import (
	"testing"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

func TestParse(t *testing.T) {
	cases := []struct {
		line   string
		want   Verdict
		detail string
	}{
		{"2023-03-14T00:10:27.617341+01:00 helga amavis[233291]: (233291-12) Passed CLEAN {RelayedInbound}, [81.30.156.23]:49571 [109.248.147.159] ESMTP/ESMTP <a@x.tr> -> <u@y.net>, Queue-ID: 4PbC7269xVz3tBr, Message-ID: <40@x.tr>, mail_id: iNt6_L59opC5, b: fESL4UusO, Hits: 2.681, size: 104984, queued_as: 4PbC774GLyz3tG3, 2688 ms",
			Verdict{ID: "233291-12", Verdict: "Passed", Category: "CLEAN", Flags: "RelayedInbound", Hits: "2.681", MailID: "iNt6_L59opC5"},
			"amavis: Passed CLEAN {RelayedInbound}, hits 2.681, mail_id iNt6_L59opC5"},
		{"(351462-17) Blocked BANNED (.exe,.exe-ms,Purchase Order-20230315-pdf.scr) {DiscardedInbound,Quarantined}, [212.227.15.19]:46759 <a@x.de> -> <u@y.net>, quarantine: t3d7qJkA, Queue-ID: 4PbC1, Hits: -, size: 1",
			Verdict{ID: "351462-17", Verdict: "Blocked", Category: "BANNED", Virus: ".exe,.exe-ms,Purchase Order-20230315-pdf.scr", Flags: "DiscardedInbound,Quarantined", Hits: "-", Quarantine: "t3d7qJkA"},
			"amavis: Blocked BANNED (.exe,.exe-ms,Purchase Order-20230315-pdf.scr) {DiscardedInbound,Quarantined}, quarantined as t3d7qJkA"},
		{"(01234-05) Blocked INFECTED (Eicar-Signature) {DiscardedInbound,Quarantined}, <a@x> -> <u@y>, quarantine: virus-Zx9, mail_id: Zx9, Hits: -",
			Verdict{ID: "01234-05", Verdict: "Blocked", Category: "INFECTED", Virus: "Eicar-Signature", Flags: "DiscardedInbound,Quarantined", Hits: "-", Quarantine: "virus-Zx9", MailID: "Zx9"},
			"amavis: Blocked INFECTED (Eicar-Signature) {DiscardedInbound,Quarantined}, quarantined as virus-Zx9, mail_id Zx9"},
	}
	for _, c := range cases {
		got, ok := Parse(c.line)
		if !ok || got != c.want {
			t.Errorf("%s:\n got %+v %v\nwant %+v", c.line, got, ok, c.want)
		}
		if d := got.Detail(); d != c.detail {
			t.Errorf("detail %q, want %q", d, c.detail)
		}
	}
	if _, ok := Parse("(1234-01) ESMTP [127.0.0.1]:10024 /var/lib/amavis/tmp/amavis-x: <a@x> -> <u@y> SIZE=1 Received: from ..."); ok {
		t.Error("a line that is no verdict was read as one")
	}
	e := ScanEvent(Verdict{Verdict: "Passed", Category: "SPAMMY", Hits: "5.5"})
	if e.Type != mailflow.EventScan || e.Action != "Passed SPAMMY" || e.Score != "5.5" {
		t.Errorf("scan %+v", e)
	}
}
