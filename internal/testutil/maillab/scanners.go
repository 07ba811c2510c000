package maillab

import (
	"fmt"
	"os"
)

// SoftRejectSender is an envelope sender rspamd answers with its "soft
// reject" action (a temporary 451 4.7.1 through the milter), as its
// greylisting or a rate limit would: a multimap prefilter on the sender,
// since the lab's rspamd has no Redis for the real greylisting module.
const SoftRejectSender = "softreject@" + RemoteDomain

// writeRspamdLocal writes the lab's local.d overrides of rspamd (dir is
// its LOCAL_CONFDIR).
func writeRspamdLocal(dir string) error {
	if err := writeFile(dir+"/lab-soft-reject.map", SoftRejectSender+"\n", 0o644); err != nil {
		return err
	}
	conf := fmt.Sprintf(`# The mail lab (internal/testutil/maillab): a sender rspamd soft-rejects.
LAB_SOFT_REJECT {
  type = "from";
  filter = "email:addr";
  map = "%s/lab-soft-reject.map";
  prefilter = true;
  action = "soft reject";
  message = "Try again later (lab soft reject)";
}
`, dir)
	if err := os.MkdirAll(dir+"/local.d", 0o755); err != nil {
		return err
	}
	return writeFile(dir+"/local.d/multimap.conf", conf, 0o644)
}
