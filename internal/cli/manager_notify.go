package cli

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/mailtrace/mailtrace/controllers/notification"
	"github.com/mailtrace/mailtrace/internal/egress/grants"
	"github.com/mailtrace/mailtrace/internal/notify"
)

// EnvSMTPPassword holds the SMTP relay's password (or use --smtp-password-file).
const EnvSMTPPassword = "MAILTRACE_SMTP_PASSWORD"

// NotifyOptions configure the notification controller's SMTP relay.
type NotifyOptions struct {
	// SMTPRelay is host:port; empty turns email notifications off (they are
	// recorded as given up, with the reason).
	SMTPRelay string
	// SMTPFrom is the sender address.
	SMTPFrom string
	// SMTPUsername, with the password from $MAILTRACE_SMTP_PASSWORD or
	// SMTPPasswordFile, authenticates with AUTH PLAIN.
	SMTPUsername     string
	SMTPPasswordFile string
	// SMTPStartTLS requires STARTTLS.
	SMTPStartTLS bool
	// EmailsPerHour and EmailBurst limit each namespace's emails (0: defaults).
	EmailsPerHour float64
	EmailBurst    int
}

func addNotifyFlags(fl *pflag.FlagSet, o *NotifyOptions) {
	fl.StringVar(&o.SMTPRelay, "smtp-relay", "", "host:port of the SMTP relay for email notifications (empty: no email)")
	fl.StringVar(&o.SMTPFrom, "smtp-from", "", "sender address of email notifications")
	fl.StringVar(&o.SMTPUsername, "smtp-username", "", "SMTP AUTH user; the password comes from $"+EnvSMTPPassword+" or --smtp-password-file")
	fl.StringVar(&o.SMTPPasswordFile, "smtp-password-file", "", "file holding the SMTP AUTH password (such as a mounted Secret)")
	fl.BoolVar(&o.SMTPStartTLS, "smtp-starttls", false, "require STARTTLS with the relay (its certificate is verified)")
	fl.Float64Var(&o.EmailsPerHour, "notify-emails-per-hour", notification.DefaultEmailsPerHour, "email notifications each namespace may send per hour through the relay (beyond a burst of --notify-email-burst); more wait")
	fl.IntVar(&o.EmailBurst, "notify-email-burst", notification.DefaultEmailBurst, "email notifications a namespace may send at once before --notify-emails-per-hour applies")
}

// mailer returns the SMTP sender, or nil when no relay is configured.
func (o NotifyOptions) mailer(getenv func(string) string) (*notify.Mailer, error) {
	if o.SMTPRelay == "" {
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(o.SMTPRelay); err != nil {
		return nil, fmt.Errorf("--smtp-relay %q: want host:port: %v", o.SMTPRelay, err)
	}
	if o.SMTPFrom == "" || !strings.Contains(o.SMTPFrom, "@") {
		return nil, fmt.Errorf("--smtp-from %q: an address is required with --smtp-relay", o.SMTPFrom)
	}
	c := notify.SMTPConfig{Addr: o.SMTPRelay, From: o.SMTPFrom, Username: o.SMTPUsername, StartTLS: o.SMTPStartTLS}
	if o.SMTPUsername != "" {
		c.Password = getenv(EnvSMTPPassword)
		if o.SMTPPasswordFile != "" {
			b, err := os.ReadFile(o.SMTPPasswordFile)
			if err != nil {
				return nil, fmt.Errorf("--smtp-password-file: %w", err)
			}
			c.Password = strings.TrimRight(string(b), "\r\n")
		}
	}
	return &notify.Mailer{Config: c}, nil
}

// setupNotifications adds the notification controller.
func setupNotifications(mgr ctrl.Manager, o NotifyOptions, g *grants.Resolver) error {
	m, err := o.mailer(os.Getenv)
	if err != nil {
		return err
	}
	r := &notification.Reconciler{Grants: g, Options: notification.Options{EmailsPerHour: o.EmailsPerHour, EmailBurst: o.EmailBurst}}
	if m != nil {
		r.Mailer = m
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the notification controller: %w", err)
	}
	return nil
}
