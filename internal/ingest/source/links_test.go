package source

import (
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// The index keeps a link by the hash of its key, and gives back what was
// noted: the trace (20 hex digits or another shape), the event's time and,
// for a recipient's outcome or an LMTP session, the recipient.
func TestLinksNoteAndFind(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	const hexID = "0123456789abcdef0123"
	deliver := func(trace, msgID, rcpt, reply string) *mailflow.Event {
		return &mailflow.Event{Type: mailflow.EventDeliver, MessageTraceID: trace, MessageID: msgID, Recipient: rcpt, SMTPResponse: reply, Time: at}
	}
	for _, tc := range []struct {
		name  string
		ev    *mailflow.Event
		find  func(l *Links) (Link, bool)
		want  Link
		found bool
	}{
		{"Message-ID", deliver(hexID, "<a@x>", "", ""),
			func(l *Links) (Link, bool) { return l.MessageID("a@x", "") }, Link{TraceID: hexID, Time: at}, true},
		{"Message-ID, a trace ID of another shape", deliver("exim-1RAbCd-000Xyz-AB", "<a@x>", "", ""),
			func(l *Links) (Link, bool) { return l.MessageID(" <a@x> ", "") }, Link{TraceID: "exim-1RAbCd-000Xyz-AB", Time: at}, true},
		{"upper-case hex is another shape", deliver("0123456789ABCDEF0123", "<a@x>", "", ""),
			func(l *Links) (Link, bool) { return l.MessageID("a@x", "") }, Link{TraceID: "0123456789ABCDEF0123", Time: at}, true},
		{"a recipient's outcome", deliver(hexID, "<a@x>", "bob@example.com", ""),
			func(l *Links) (Link, bool) { return l.MessageID("a@x", "<Bob@Example.com>") }, Link{TraceID: hexID, Recipient: "bob@example.com", Time: at}, true},
		{"another recipient", deliver(hexID, "<a@x>", "bob@example.com", ""),
			func(l *Links) (Link, bool) { return l.MessageID("a@x", "eve@example.com") }, Link{}, false},
		{"another Message-ID", deliver(hexID, "<a@x>", "", ""),
			func(l *Links) (Link, bool) { return l.MessageID("b@x", "") }, Link{}, false},
		{"an LMTP session", deliver(hexID, "<a@x>", "bob@example.com", "250 2.0.0 <bob@example.com> Y6a3EvpUt2l+eyIAYRBqSw Saved"),
			func(l *Links) (Link, bool) { return l.Session("Y6a3EvpUt2l+eyIAYRBqSw", "") }, Link{TraceID: hexID, Recipient: "bob@example.com", Time: at}, true},
		{"an LMTP session and its recipient", deliver(hexID, "<a@x>", "bob@example.com", "250 2.0.0 <bob@example.com> Y6a3EvpUt2l+eyIAYRBqSw Saved"),
			func(l *Links) (Link, bool) { return l.Session("Y6a3EvpUt2l+eyIAYRBqSw", "BOB@example.com") }, Link{TraceID: hexID, Recipient: "bob@example.com", Time: at}, true},
		{"an LMTP session, another recipient: the session's latest", deliver(hexID, "<a@x>", "bob@example.com", "250 2.0.0 <bob@example.com> Y6a3EvpUt2l+eyIAYRBqSw Saved"),
			func(l *Links) (Link, bool) { return l.Session("Y6a3EvpUt2l+eyIAYRBqSw", "eve@example.com") }, Link{TraceID: hexID, Recipient: "bob@example.com", Time: at}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLinks(nil, nil)
			l.Note(tc.ev)
			check := func(l *Links, when string) {
				got, ok := tc.find(l)
				if ok != tc.found || got != tc.want {
					t.Errorf("%s: %+v, %v; want %+v, %v", when, got, ok, tc.want, tc.found)
				}
			}
			check(l, "noted")
			l.rotate(at) // the older generation
			check(l, "a generation older")
			b, err := json.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			r := NewLinks(nil, nil)
			if err := json.Unmarshal(b, r); err != nil {
				t.Fatal(err)
			}
			check(r, "saved and restored")
		})
	}
}

// What the index keeps of a link: no string (so no log line behind one)
// for a trace ID of 20 lower-case hex digits and a recipient that is the
// key's; copies of the others.
func TestLinkVal(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		link      Link
		keyRcpt   string
		noPointer bool
	}{
		{"hex trace ID", Link{TraceID: "0123456789abcdef0123", Time: at}, "", true},
		{"hex trace ID, the key's recipient", Link{TraceID: "0123456789abcdef0123", Recipient: "bob@example.com", Time: at}, "bob@example.com", true},
		{"hex trace ID, another recipient", Link{TraceID: "0123456789abcdef0123", Recipient: "bob@example.com", Time: at}, "", false},
		{"trace ID of another shape", Link{TraceID: "abc", Time: at}, "", false},
		{"no time", Link{TraceID: "0123456789abcdef0123"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, o := makeVal(tc.link, tc.keyRcpt)
			if (o == nil) != tc.noPointer || (v.flags&linkHasOther != 0) != (o != nil) {
				t.Errorf("other = %+v, flags %b", o, v.flags)
			}
			if got := v.link(tc.keyRcpt, o); got != tc.link {
				t.Errorf("link = %+v, want %+v", got, tc.link)
			}
		})
	}
}

// A state saved before the index kept hashes (keys as kind, id and
// recipient) is restored: its links are found.
func TestLinksRestoreKeyedState(t *testing.T) {
	old := `{"rotated":"2026-03-02T10:00:00Z","cur":[{"k":1,"id":"a@x","rcpt":"bob@example.com","t":"0123456789abcdef0123","r":"bob@example.com","at":"2026-03-02T10:00:00Z"}],"old":[{"k":2,"id":"Y6a3EvpUt2l+eyIAYRBqSw","t":"t2","r":"eve@example.com","at":"2026-03-02T09:00:00Z"}]}`
	l := NewLinks(nil, nil)
	if err := json.Unmarshal([]byte(old), l); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	if v, ok := l.MessageID("<a@x>", "bob@example.com"); !ok || v != (Link{TraceID: "0123456789abcdef0123", Recipient: "bob@example.com", Time: at}) {
		t.Errorf("Message-ID: %+v, %v", v, ok)
	}
	if v, ok := l.Session("Y6a3EvpUt2l+eyIAYRBqSw", ""); !ok || v != (Link{TraceID: "t2", Recipient: "eve@example.com", Time: at.Add(-time.Hour)}) {
		t.Errorf("session: %+v, %v", v, ok)
	}
}

// A key noted again takes the latest link, whether or not either fits a
// linkVal alone.
func TestLinksNotedAgain(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for _, ids := range [][2]string{
		{"0123456789abcdef0123", "exim-1"},
		{"exim-1", "0123456789abcdef0123"},
		{"exim-1", "exim-2"},
	} {
		l := NewLinks(nil, nil)
		for i, id := range ids {
			l.Note(&mailflow.Event{Type: mailflow.EventReceive, MessageTraceID: id, MessageID: "<a@x>", Time: at.Add(time.Duration(i) * time.Second)})
		}
		if v, ok := l.MessageID("a@x", ""); !ok || v.TraceID != ids[1] || !v.Time.Equal(at.Add(time.Second)) {
			t.Errorf("%v: %+v, %v", ids, v, ok)
		}
		if len(l.cur.other) > 1 || (len(l.cur.other) == 1) != (ids[1] == "exim-1" || ids[1] == "exim-2") {
			t.Errorf("%v: other %v", ids, l.cur.other)
		}
	}
}

// The index's hash is keyed by a seed of its own (a sender cannot aim a
// Message-ID at another message's key without it), and the seed is saved
// with the state, so that a restored index finds its links.
func TestLinksHashIsKeyed(t *testing.T) {
	k := linkKey{keyMsgID, "a@x", "bob@example.com"}
	a, b := NewLinks(nil, nil), NewLinks(nil, nil)
	if a.seed == b.seed {
		t.Fatal("two indexes drew one seed")
	}
	if a.linkHash(k) == b.linkHash(k) {
		t.Error("one key hashes alike under two seeds: the hash is not keyed")
	}
	if a.linkHash(k) != a.linkHash(linkKey{keyMsgID, "a@x", "bob@example.com"}) {
		t.Error("one key hashes differently under one seed")
	}
	if a.linkHash(k) == a.linkHash(linkKey{keyMsgID, "a@xb", "ob@example.com"}) {
		t.Error("the id and the recipient are not told apart")
	}
	saved, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	r := NewLinks(nil, nil)
	if err := json.Unmarshal(saved, r); err != nil {
		t.Fatal(err)
	}
	if r.seed != a.seed {
		t.Errorf("restored seed %v, want %v", r.seed, a.seed)
	}
	// hashed entries without a seed (not keyed) are not trusted
	r2 := NewLinks(nil, nil)
	if err := json.Unmarshal([]byte(`{"cur":[{"h":12345,"t":"0123456789abcdef0123","at":"2026-03-02T10:00:00Z"}]}`), r2); err != nil {
		t.Fatal(err)
	}
	if len(r2.cur.vals) != 0 {
		t.Errorf("%d entries of unkeyed hashes restored, want none", len(r2.cur.vals))
	}
}

// PackTraceID packs only 20 lower-case hex digits, and hex gives them back.
func TestPackTraceID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"0123456789abcdef0123", true},
		{"0123456789ABCDEF0123", false}, // upper case would not come back as written
		{"0123456789abcdef012", false},
		{"0123456789abcdef01234", false},
		{"exim-1RAbCd-000Xyz-AB", false},
		{"", false},
	} {
		b, ok := PackTraceID(tc.id)
		if ok != tc.ok || ok && hex.EncodeToString(b[:]) != tc.id {
			t.Errorf("PackTraceID(%q) = %x, %v; want ok %v and the same digits back", tc.id, b, ok, tc.ok)
		}
	}
}
