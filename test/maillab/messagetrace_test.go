package maillab_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/mailflow"
	"github.com/mailtrace/mailtrace/internal/store/storeopen"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
	"github.com/mailtrace/mailtrace/internal/testutil/maillab"
)

// junkUser is the mailbox of the MessageTrace check (no scenario writes to it).
var junkUser = maillab.User(65)

// messageTraceJunk answers "why is it in my Junk folder?" the way a user
// asks it: a MessageTrace with spec.details for the message, reconciled by
// the real manager (envtest) reading the lab's store. Its status.details
// must name rspamd's action and score and the Junk folder Sieve filed it
// into; with -update, README's recorded status is rewritten from it. A
// second MessageTrace, of the message's rows, must give its row the folder
// (status.rows[].folder: the summary row).
func messageTraceJunk(t *testing.T, l *maillab.Lab) {
	env, err := kubetest.Start()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := storeopen.Open(ctx, l.StoreURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mgr, err := cli.NewManager(env.Config, st, cli.ManagerOptions{MetricsBindAddress: "0", HealthProbeBindAddress: "0", Tenancy: cli.TenancyDisabled})
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	defer func() { stop(); <-done }()

	if err := l.SetSieve(junkUser, `require ["fileinto", "mailbox"];
if header :contains "X-Spam" "Yes" { fileinto :create "Junk"; stop; }
`); err != nil {
		t.Fatal(err)
	}
	s := mustSend(t, l.Send(maillab.Mail{From: "promo@remote.test", To: []string{junkUser}, Subject: "You have won", Body: gtubeAddHeader}))
	// the row, once Dovecot's line has joined it
	var traceID string
	for traceID == "" {
		rows, err := l.Rows(ctx, mailflow.Query{MessageID: s.messageID, Recipients: []string{junkUser}})
		if err == nil && len(rows) == 1 {
			if evs, err := l.Store.Events(ctx, rows[0].MessageTraceID, junkUser); err == nil && folderOf(evs) == "Junk" && spamOf(evs) != "" {
				traceID = rows[0].MessageTraceID
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no row of %s for %s with its folder and rspamd's verdict (rows %v, error %v)", s.messageID, junkUser, rows, err)
		case <-time.After(200 * time.Millisecond):
		}
	}

	ns := kubetest.Namespace(t, env.Client)
	mt := &v1alpha1.MessageTrace{
		ObjectMeta: metav1.ObjectMeta{Name: "why-junk", Namespace: ns},
		Spec:       v1alpha1.MessageTraceSpec{Details: &v1alpha1.DetailsSpec{MessageTraceID: traceID, Recipient: junkUser}},
	}
	if err := env.Client.Create(ctx, mt); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, 2*time.Minute, 200*time.Millisecond, func() (bool, string) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(mt), mt); err != nil {
			return false, err.Error()
		}
		return mt.Status.Details != nil, "status.details not written yet"
	})
	d := mt.Status.Details
	var scan, save *v1alpha1.MessageEvent
	for i := range d.Events {
		switch d.Events[i].Event {
		case string(mailflow.EventScan):
			scan = &d.Events[i]
		case string(mailflow.EventSave):
			save = &d.Events[i]
		}
	}
	if scan == nil || !strings.Contains(scan.Detail, "rspamd: add header, score ") || save == nil || !strings.Contains(save.Detail, `"Junk"`) {
		t.Fatalf("status.details lacks rspamd's action and score or the Junk folder:\n%s", statusYAML(t, mt))
	}
	rows := &v1alpha1.MessageTrace{
		ObjectMeta: metav1.ObjectMeta{Name: "junk-rows", Namespace: ns},
		Spec:       v1alpha1.MessageTraceSpec{MessageTraceID: traceID, Window: &metav1.Duration{Duration: time.Hour}},
	}
	if err := env.Client.Create(ctx, rows); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, 2*time.Minute, 200*time.Millisecond, func() (bool, string) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(rows), rows); err != nil {
			return false, err.Error()
		}
		return rows.Status.Phase == v1alpha1.PhaseSucceeded, "the rows trace has not succeeded yet"
	})
	if len(rows.Status.Rows) != 1 || rows.Status.Rows[0].Recipient != junkUser || rows.Status.Rows[0].Folder != "Junk" {
		t.Fatalf("status.rows lacks %s's row with the folder Junk:\n%s", junkUser, statusYAML(t, rows))
	}
	out := statusYAML(t, mt)
	t.Logf("the MessageTrace's status:\n%s", out)
	if *update {
		writeReadmeStatus(t, mt, out)
	}
}

// statusYAML is the MessageTrace's status as `kubectl get -o yaml` prints it.
func statusYAML(t *testing.T, mt *v1alpha1.MessageTrace) string {
	b, err := yaml.Marshal(map[string]any{"status": mt.Status})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const (
	readmePath        = "../../README.md"
	readmeStatusBegin = "<!-- maillab: the GTUBE-then-Junk MessageTrace, recorded by `go test ./test/maillab -run TestScenarios -update`; do not edit -->"
	readmeStatusEnd   = "<!-- end of the maillab MessageTrace -->"
)

// writeReadmeStatus rewrites README's recorded MessageTrace (its spec and
// its status) from this run.
func writeReadmeStatus(t *testing.T, mt *v1alpha1.MessageTrace, status string) {
	spec, err := yaml.Marshal(map[string]any{"spec": mt.Spec})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(readmePath)
	if err != nil {
		t.Errorf("update: %v", err)
		return
	}
	s := string(doc)
	i, j := strings.Index(s, readmeStatusBegin), strings.Index(s, readmeStatusEnd)
	if i < 0 || j < i {
		t.Errorf("update: %s has no %q ... %q markers", readmePath, readmeStatusBegin, readmeStatusEnd)
		return
	}
	block := readmeStatusBegin + "\n```yaml\n" + string(spec) + status + "```\n" + readmeStatusEnd
	s = s[:i] + block + s[j+len(readmeStatusEnd):]
	if err := os.WriteFile(readmePath, []byte(s), 0o644); err != nil {
		t.Errorf("update: %v", err)
	}
}
