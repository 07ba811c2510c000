package cli

import (
	"os"
	"path/filepath"
	"testing"
)

func TestNotifyOptionsMailer(t *testing.T) {
	env := func(k string) string {
		if k == EnvSMTPPassword {
			return "from-env"
		}
		return ""
	}
	if m, err := (NotifyOptions{}).mailer(env); m != nil || err != nil {
		t.Errorf("no relay: %v %v", m, err)
	}
	if _, err := (NotifyOptions{SMTPRelay: "relay"}).mailer(env); err == nil {
		t.Error("a relay without a port was accepted")
	}
	if _, err := (NotifyOptions{SMTPRelay: "relay:25"}).mailer(env); err == nil {
		t.Error("a relay without --smtp-from was accepted")
	}
	m, err := (NotifyOptions{SMTPRelay: "relay:587", SMTPFrom: "mailtrace@example.com", SMTPUsername: "u", SMTPStartTLS: true}).mailer(env)
	if err != nil || m.Config.Password != "from-env" || !m.Config.StartTLS || m.Config.Addr != "relay:587" {
		t.Errorf("%+v %v", m, err)
	}
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err = (NotifyOptions{SMTPRelay: "relay:587", SMTPFrom: "mailtrace@example.com", SMTPUsername: "u", SMTPPasswordFile: f}).mailer(env)
	if err != nil || m.Config.Password != "from-file" {
		t.Errorf("%+v %v", m, err)
	}
}
