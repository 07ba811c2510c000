package mailflow

import (
	"testing"
	"time"
)

// A recipient's folder is that of its latest Save, whatever order its
// events arrive in.
func TestFolderOf(t *testing.T) {
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	save := func(sec int, folder string) Event {
		return Event{Time: t0.Add(time.Duration(sec) * time.Second), Recipient: "bob@x.test", Type: EventSave, Folder: folder}
	}
	cases := []struct {
		name   string
		events []Event
		want   string
	}{
		{"no event", nil, ""},
		{"delivered, no Save", []Event{{Time: t0, Recipient: "bob@x.test", Type: EventDeliver}}, ""},
		{"one Save", []Event{save(0, "Junk")}, "Junk"},
		{"a later re-delivery into another folder", []Event{save(0, "INBOX"), save(5, "Archive")}, "Archive"},
		{"the same, its lines in the other order", []Event{save(5, "Archive"), save(0, "INBOX")}, "Archive"},
		{"same instant: the greater name", []Event{save(0, "INBOX"), save(0, "Junk")}, "Junk"},
		{"same instant, other order", []Event{save(0, "Junk"), save(0, "INBOX")}, "Junk"},
		{"a Save without a folder stores nothing known", []Event{save(0, "INBOX"), save(9, "")}, "INBOX"},
		{"a message-level Save is no recipient's", []Event{{Time: t0, Type: EventSave, Folder: "Junk"}}, ""},
		{"other events name no folder", []Event{save(0, "INBOX"), {Time: t0.Add(time.Minute), Recipient: "bob@x.test", Type: EventFail, Folder: "Junk"}}, "INBOX"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := FolderOf(c.events); got != c.want {
				t.Errorf("FolderOf = %q, want %q", got, c.want)
			}
		})
	}
}
