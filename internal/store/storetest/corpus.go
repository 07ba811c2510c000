package storetest

import (
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// The corpus: ten messages received in the day around T0 (m01 newest, m10
// oldest, ten minutes apart) and one (m11) two days before. Thirteen rows in
// the day:
//
//	m01 alice@example.com        -> bob@contoso.com              Delivered  Outbound
//	m02 Bob@Contoso.com          -> alice@example.com            Delivered  Inbound
//	                             -> carol@example.com            Pending
//	m03 carol@mail.example.com   -> dave@sub.example.com         Failed     Internal
//	m04 spam@bad.example.net     -> alice@example.com            FilteredAsSpam Inbound
//	m05 news@lists.example.org   -> all@example.com              Expanded   Inbound
//	                             -> alice@example.com (from all) Delivered
//	                             -> bob@example.com (from all)   Delivered
//	m06 weird%user_x\y@example.com -> eve@example.com            Quarantined Inbound
//	m07 alice@example.com        -> frank@other.example          GettingStatus Outbound
//	m08 田中@example.jp           -> 鈴木@example.jp               Delivered  Internal
//	m09 user@anything.test       -> x@example.com                Delivered  Inbound
//	m10 ghost@example.com        (no recipient yet: placeholder) GettingStatus (no direction)
const (
	sM01Alice  = "m01 bob@contoso.com"
	sM02Alice  = "m02 alice@example.com"
	sM02Carol  = "m02 carol@example.com"
	sM03Dave   = "m03 dave@sub.example.com"
	sM04Alice  = "m04 alice@example.com"
	sM05All    = "m05 all@example.com"
	sM05Alice  = "m05 alice@example.com"
	sM05Bob    = "m05 bob@example.com"
	sM06Eve    = "m06 eve@example.com"
	sM07Frank  = "m07 frank@other.example"
	sM08Suzuki = "m08 鈴木@example.jp"
	sM09X      = "m09 x@example.com"
	sM10       = "m10 "
)

var allDayKeys = []string{sM01Alice, sM02Alice, sM02Carol, sM03Dave, sM04Alice, sM05All, sM05Alice, sM05Bob,
	sM06Eve, sM07Frank, sM08Suzuki, sM09X, sM10}

type corpusMsg struct {
	id        string
	recv      time.Time
	sender    string
	subject   string
	messageID string
	direction mailflow.Direction
	ocip      string
	fromIP    string
	size      int64
	rcpts     []corpusRcpt
}

type corpusRcpt struct {
	addr     string
	outcome  mailflow.EventType // "" = Send only (GettingStatus)
	toIP     string
	expanded string
}

var corpus = []corpusMsg{
	{"m01", at(-10), "alice@example.com", "Quarterly report", "<q1@example.com>", mailflow.DirectionOutbound, "203.0.113.5", "10.0.0.5", 1200,
		[]corpusRcpt{{"bob@contoso.com", mailflow.EventDeliver, "198.51.100.7", ""}}},
	{"m02", at(-20), "Bob@Contoso.com", "Re: Quarterly report", "<R2@contoso.com>", mailflow.DirectionInbound, "198.51.100.20", "198.51.100.20", 2300,
		[]corpusRcpt{{"Alice@Example.com", mailflow.EventDeliver, "10.0.0.25", ""}, {"carol@example.com", mailflow.EventDefer, "", ""}}},
	{"m03", at(-30), "carol@mail.example.com", "Lunch?", "<l3@mail.example.com>", mailflow.DirectionInternal, "10.0.0.8", "10.0.0.8", 800,
		[]corpusRcpt{{"dave@sub.example.com", mailflow.EventFail, "10.0.0.9", ""}}},
	{"m04", at(-40), "spam@bad.example.net", "WIN A PRIZE", "<w4@bad.example.net>", mailflow.DirectionInbound, "2001:db8::1", "2001:db8::1", 5000,
		[]corpusRcpt{{"alice@example.com", mailflow.EventFilterAsSpam, "", ""}}},
	{"m05", at(-50), "news@lists.example.org", "Newsletter 100% free_stuff", "<n5@lists.example.org>", mailflow.DirectionInbound, "2001:db8:1::5", "2001:db8:1::5", 40000,
		[]corpusRcpt{
			{"all@example.com", mailflow.EventExpand, "", ""},
			{"alice@example.com", mailflow.EventDeliver, "2001:db8:2::1", "all@example.com"},
			{"bob@example.com", mailflow.EventDeliver, "2001:db8:2::1", "All@Example.com"},
		}},
	{"m06", at(-60), `weird%user_x\y@example.com`, "Invoice_%", "<i6@example.com>", mailflow.DirectionInbound, "192.0.2.1", "::ffff:192.0.2.1", 700,
		[]corpusRcpt{{"eve@example.com", mailflow.EventQuarantine, "", ""}}},
	{"m07", at(-70), "alice@example.com", "ÄRGER im Büro", "<a7@example.com>", mailflow.DirectionOutbound, "10.1.1.1", "10.1.1.1", 900,
		[]corpusRcpt{{"frank@other.example", "", "", ""}}},
	{"m08", at(-80), "田中@example.jp", "会議の件について 🎉", "<k8@example.jp>", mailflow.DirectionInternal, "10.2.2.2", "10.2.2.2", 1000,
		[]corpusRcpt{{"鈴木@example.jp", mailflow.EventDeliver, "10.2.2.3", ""}}},
	{"m09", at(-90), "user@anything.test", "Hello", "<h9@anything.test>", mailflow.DirectionInbound, "192.0.2.99", "192.0.2.99", 100,
		[]corpusRcpt{{"x@example.com", mailflow.EventDeliver, "10.0.0.30", ""}}},
	{"m10", at(-100), "ghost@example.com", "pending intake", "<g10@example.com>", "", "192.0.2.200", "192.0.2.200", 300, nil},
	{"m11", T0.Add(-48 * time.Hour), "alice@example.com", "Old", "<o11@example.com>", mailflow.DirectionOutbound, "203.0.113.5", "10.0.0.5", 100,
		[]corpusRcpt{{"bob@contoso.com", mailflow.EventDeliver, "198.51.100.7", ""}}},
}

// events returns a corpus message's events: a Receive carrying the message
// attributes at its received time, then for each recipient its outcome two
// minutes later (an Expand one minute later; a Send for no outcome).
func (m corpusMsg) events() []mailflow.Event {
	evs := []mailflow.Event{{
		ID: m.id + "-receive", Time: m.recv, MessageTraceID: m.id, Type: mailflow.EventReceive, Source: "smtpd",
		Sender: m.sender, Subject: m.subject, MessageID: m.messageID, Direction: m.direction,
		OriginalClientIP: m.ocip, FromIP: m.fromIP, Size: m.size, Detail: "received",
	}}
	for _, r := range m.rcpts {
		e := mailflow.Event{
			ID: m.id + "-" + r.addr, Time: m.recv.Add(2 * time.Minute), MessageTraceID: m.id, Recipient: r.addr,
			Type: r.outcome, ToIP: r.toIP, ExpandedFrom: r.expanded, Source: "smtp", Detail: "outcome for " + r.addr,
		}
		switch r.outcome {
		case "":
			e.Type = mailflow.EventSend
		case mailflow.EventExpand:
			e.Time = m.recv.Add(time.Minute)
		}
		evs = append(evs, e)
	}
	return evs
}

func corpusEvents() []mailflow.Event {
	var evs []mailflow.Event
	for _, m := range corpus {
		evs = append(evs, m.events()...)
	}
	return evs
}

func (f *fixture) loadCorpus() {
	f.t.Helper()
	f.append(corpusEvents()...)
}
