package opensmtpd

import (
	"net/netip"
	"strings"

	"github.com/mailtrace/mailtrace/internal/ingest/source"
	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// Policy: the decisions that depend on nothing but their arguments, each
// with a table test.

// resultType is what a delivery's result means: Ok delivered, TempFail
// deferred (retried), PermFail and Loop failed.
func resultType(result string) (mailflow.EventType, bool) {
	switch strings.ToLower(result) {
	case "ok":
		return mailflow.EventDeliver, true
	case "tempfail":
		return mailflow.EventDefer, true
	case "permfail", "loop":
		return mailflow.EventFail, true
	}
	return "", false
}

// resultDSN is a delivery's DSN: the enhanced code of its stat ("250 2.0.0
// Ok", "550 5.1.1 ..."), else its reply's class, else the result's class.
func resultDSN(typ mailflow.EventType, stat string) string {
	if d := enhancedCode(stat); d != "" {
		return d
	}
	if len(stat) >= 4 && stat[3] == ' ' && isDigits(stat[:3]) && strings.Contains("245", stat[:1]) {
		return stat[:1] + ".0.0"
	}
	switch typ {
	case mailflow.EventDeliver:
		return "2.0.0"
	case mailflow.EventDefer:
		return "4.0.0"
	}
	return "5.0.0"
}

// expireDSN is the DSN of an envelope the queue gave up on: expired
// (5.4.7, delivery time expired) or removed by an administrator (5.0.0).
func expireDSN(prefix string) string {
	if prefix == "Expire" {
		return "5.4.7"
	}
	return "5.0.0"
}

// commandReject decides what a refused command (smtp failed-command) is:
// the stage, whether it concerns a message at all (RCPT, MAIL, DATA and
// the end of data: yes; HELO, AUTH, STARTTLS: no), its DSN and event
// type (source.RejectType). A recipient that does not exist fails (5.1.1);
// the server's own temporary trouble (4.3.x) and greylisting are
// deferrals; everything else, relaying denied and a filter's rejection
// included, is a refusal by policy.
//
// OpenSMTPD answers "550 Invalid recipient" both to a mailbox it does not
// have and to relaying it does not allow: outside says which (the
// recipient is not in the accepted domains: relaying denied, 5.7.1).
func commandReject(command, result string, outside func(string) bool) (stage, addr, dsn string, typ mailflow.EventType, ok bool) {
	up := strings.ToUpper(command)
	switch {
	case strings.HasPrefix(up, "RCPT TO:"):
		stage = "RCPT"
		addr = strings.TrimSpace(command[len("RCPT TO:"):])
	case strings.HasPrefix(up, "MAIL FROM:"):
		stage = "MAIL"
		addr = strings.TrimSpace(command[len("MAIL FROM:"):])
	case up == "DATA" || up == "." || strings.HasPrefix(up, "BDAT"):
		stage = "DATA"
	default:
		return "", "", "", "", false
	}
	if i := strings.IndexByte(addr, '>'); strings.HasPrefix(addr, "<") && i > 0 {
		addr = addr[1:i]
	}
	dsn = enhancedCode(result)
	lower := strings.ToLower(result)
	class := "5"
	if strings.HasPrefix(result, "4") {
		class = "4"
	}
	if dsn == "" {
		switch {
		case strings.Contains(lower, "relay"), stage == "RCPT" && strings.Contains(lower, "invalid recipient") && outside(addr):
			dsn = class + ".7.1"
		case strings.Contains(lower, "invalid recipient") && stage == "RCPT", strings.Contains(lower, "unknown user"), strings.Contains(lower, "user unknown"):
			dsn = class + ".1.1"
		default:
			dsn = class + ".0.0"
		}
	}
	return stage, addr, dsn, source.RejectType(dsn, result, stage == "DATA"), true
}

// fromOrg decides whether a message comes from the organisation: an
// authenticated session, a local submission (smtpd's "address=local"), or
// loopback with a sender of the accepted domains.
func fromOrg(domains []string, sender string, clientIP, user string, local bool) bool {
	switch {
	case user != "" || local:
		return true
	case sender != "" && (clientIP == "" || source.IsLoopback(clientIP)):
		return source.Inside(domains, sender)
	}
	return false
}

func validIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// relayOf splits mta's relay="192.0.2.1 (mx.example.net)" into a relay as
// the store shows it ("mx.example.net[192.0.2.1]") and its IP.
func relayOf(relay string) (string, string) {
	ip, name, _ := strings.Cut(relay, " ")
	name = strings.TrimSuffix(strings.TrimPrefix(name, "("), ")")
	if !validIP(ip) {
		return relay, ""
	}
	return name + "[" + ip + "]", ip
}
