package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mailtrace/mailtrace/internal/mailflow"
)

// goldenDigests are the SHA-256 digests of the JSON of every event emitted
// for each maildata file, in emission order, followed by the JSON of the
// final Stats, as the correlator produced them before the parse and
// correlate stage was optimised (commit 1599c23). Any change of behaviour,
// however small (an event's field, the order of events, a counter), changes
// a digest. Regenerate only for an intended change of behaviour:
// MAILTRACE_GOLDEN_PRINT=1 go test -run TestMaildataGoldenEvents -v ./internal/ingest/
var goldenDigests = map[string]string{
	"crowdsec-hub/postfix-helo/postfix-spam.log":                     "710af3df347d468fcfb0df45bdc6e7036395e0cadee4d1c1d0d594b7ec8b931c", // 4 events
	"crowdsec-hub/postfix-honeypot-users/postfix-honeypot-users.log": "167e66ce6d75888a67130442e297fc94ce8c0c1644b1ffbfeb9ea63989f135f4", // 0 events
	"crowdsec-hub/postfix-logs/postfix-logs.log":                     "16dfc46d88358da42928e853f64f45e264451f378a8ef910ea91323374c861c3", // 8 events
	"crowdsec-hub/postfix-non-smtp/postfix-non-smtp.log":             "6faf68df8559622abf9e56485b82ce2276187e236ece67c6b770cf2a7e77a18a", // 0 events
	"crowdsec-hub/postfix-relay/postfix-spam.log":                    "c38bb2698831430759685d18267bbf3514affd0bac35f62be7a38428016d6437", // 4 events
	"crowdsec-hub/postfix-sasl-bf/postfix-sasl-bf.log":               "32ed8432bf62ba50946e67936622f440ff2bce9d5c2b578dbb704ff7c9f262bb", // 0 events
	"crowdsec-hub/postfix-spam/postfix-spam.log":                     "bf07409edb066eb0d2cd22ef8f9737ae7b6198e62d9f5678eb3a4b85d38c0e1a", // 4 events
	"fail2ban/postfix": "01ad1aa090235e0a553728f0c6c05d4e7228990bdcb85aab7cf92b05331952fb", // 49 events
	"pmg-log-tracker/tests/test_input_after_queue_relay_before_lmtp":               "8b2be18dbca57823948ace4a05434292ebad56d5d63ac41ba853ce28756a0dd7", // 7 events
	"pmg-log-tracker/tests/test_input_mixed":                                       "7580b75c8041dd8a38d82cfea8e588a3970416b6d7e28bc538c6904b5dd39db2", // 51 events
	"pmg-log-tracker/tests/test_input_mixed_accept_block_quarantine":               "57cf7ee89122b3860939962dd75ca6cfd63eaa21cae85b1d5b0a2ecfa47a93d0", // 10 events
	"pmg-log-tracker/tests/test_output_after_queue":                                "d6b5b031298f63f9c3b2c1c1f345760a65b8229b972075e34b90ad6f225112df", // 0 events
	"pmg-log-tracker/tests/test_output_before_queue":                               "9699d7a11a6241776ee81cb52558c70d3444ae14f85a6585285ef6857b26c8f0", // 0 events
	"pmg-log-tracker/tests/test_output_before_queue_mixed_accept_block_quarantine": "dd83931c093cc9ca0913286de6553c3fc12262ba4048488f69f10919f550b6ae", // 0 events
	"postfix-grok-patterns/test/anvil_0001.yaml":                                   "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/anvil_0002.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/anvil_0003.yaml":                                   "e8f33d70c8e3d190f04692c772c911152fab86e70880c3aa1e6380a48daaeb49", // 0 events
	"postfix-grok-patterns/test/anvil_0004.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/anvil_0005.yaml":                                   "e8f33d70c8e3d190f04692c772c911152fab86e70880c3aa1e6380a48daaeb49", // 0 events
	"postfix-grok-patterns/test/anvil_0006.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/anvil_0007.yaml":                                   "e8f33d70c8e3d190f04692c772c911152fab86e70880c3aa1e6380a48daaeb49", // 0 events
	"postfix-grok-patterns/test/anvil_0008.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/anvil_0009.yaml":                                   "e8f33d70c8e3d190f04692c772c911152fab86e70880c3aa1e6380a48daaeb49", // 0 events
	"postfix-grok-patterns/test/bounce_0001.yaml":                                  "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/bounce_0002.yaml":                                  "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/bounce_0003.yaml":                                  "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/bounce_0004.yaml":                                  "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/cleanup_0001.yaml":                                 "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/cleanup_0002.yaml":                                 "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/cleanup_0003.yaml":                                 "5d5232db3ab10eb7b496c3b420b423fec35fece9827986d94c498067cfc77f5d", // 0 events
	"postfix-grok-patterns/test/cleanup_0004.yaml":                                 "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/cleanup_0005.yaml":                                 "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/cleanup_0006.yaml":                                 "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/cleanup_0007.yaml":                                 "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/cleanup_0008.yaml":                                 "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/cleanup_0009.yaml":                                 "e8f33d70c8e3d190f04692c772c911152fab86e70880c3aa1e6380a48daaeb49", // 0 events
	"postfix-grok-patterns/test/cleanup_0010.yaml":                                 "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/cleanup_0011.yaml":                                 "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/cleanup_0012.yaml":                                 "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/command_counter_data_0001.yaml":                    "f6b3c19ae4964c938174ba66a0cd712c07d33a0519b4f914d71656e3f33527c9", // 0 events
	"postfix-grok-patterns/test/command_counter_data_0002.yaml":                    "5d5232db3ab10eb7b496c3b420b423fec35fece9827986d94c498067cfc77f5d", // 0 events
	"postfix-grok-patterns/test/command_counter_data_0003.yaml":                    "6a06109cd6faf73ee27b829e71c5e711241490ce89241d053c22ed72cce0b3e2", // 0 events
	"postfix-grok-patterns/test/command_counter_data_0004.yaml":                    "5d5232db3ab10eb7b496c3b420b423fec35fece9827986d94c498067cfc77f5d", // 0 events
	"postfix-grok-patterns/test/command_counter_data_0005.yaml":                    "5d5232db3ab10eb7b496c3b420b423fec35fece9827986d94c498067cfc77f5d", // 0 events
	"postfix-grok-patterns/test/delays_0001.yaml":                                  "e8f33d70c8e3d190f04692c772c911152fab86e70880c3aa1e6380a48daaeb49", // 0 events
	"postfix-grok-patterns/test/discard_0001.yaml":                                 "75ae85a433f0944a231c8b7e80a6b69b8f9719e7fd23a82f7cbc14e8d8a0286e", // 0 events
	"postfix-grok-patterns/test/dnsblog_0001.yaml":                                 "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/dnsblog_0002.yaml":                                 "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/dnsblog_0003.yaml":                                 "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/error_0001.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/error_0002.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/lmtp_0001.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/local_0001.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/local_0002.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/local_0003.yaml":                                   "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/master_0001.yaml":                                  "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/master_0002.yaml":                                  "28d3dacd9c3cf05ce9659dc5ca5644144987e7bd8c0c14032e37581daf6040e3", // 0 events
	"postfix-grok-patterns/test/master_0003.yaml":                                  "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/master_0004.yaml":                                  "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/pickup_0001.yaml":                                  "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/pipe_0001.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/pipe_0002.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/pipe_0003.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/pipe_0004.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/postdrop_0001.yaml":                                "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/postmap_0001.yaml":                                 "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/postscreen_0001.yaml":                              "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/postscreen_0002.yaml":                              "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/postscreen_0003.yaml":                              "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/postscreen_0004.yaml":                              "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/postscreen_0005.yaml":                              "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/postscreen_0006.yaml":                              "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/postscreen_0007.yaml":                              "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/postscreen_0008.yaml":                              "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/postscreen_0009.yaml":                              "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/postscreen_0010.yaml":                              "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/postscreen_0011.yaml":                              "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/postscreen_0012.yaml":                              "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/postscreen_0013.yaml":                              "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/postscreen_0014.yaml":                              "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/postscreen_0015.yaml":                              "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/postscreen_0016.yaml":                              "c5a6188f2e7edff25080c5ffc9814ce372b3a44b029ddd9c980d9fdf5e468de9", // 0 events
	"postfix-grok-patterns/test/postscreen_0017.yaml":                              "c5a6188f2e7edff25080c5ffc9814ce372b3a44b029ddd9c980d9fdf5e468de9", // 0 events
	"postfix-grok-patterns/test/postscreen_0018.yaml":                              "c5a6188f2e7edff25080c5ffc9814ce372b3a44b029ddd9c980d9fdf5e468de9", // 0 events
	"postfix-grok-patterns/test/postscreen_0019.yaml":                              "c5a6188f2e7edff25080c5ffc9814ce372b3a44b029ddd9c980d9fdf5e468de9", // 0 events
	"postfix-grok-patterns/test/postscreen_0020.yaml":                              "c5a6188f2e7edff25080c5ffc9814ce372b3a44b029ddd9c980d9fdf5e468de9", // 0 events
	"postfix-grok-patterns/test/postscreen_0021.yaml":                              "c5a6188f2e7edff25080c5ffc9814ce372b3a44b029ddd9c980d9fdf5e468de9", // 0 events
	"postfix-grok-patterns/test/postscreen_0022.yaml":                              "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/postscreen_0023.yaml":                              "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/postscreen_0024.yaml":                              "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/postscreen_0025.yaml":                              "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/postscreen_0026.yaml":                              "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/postscreen_0027.yaml":                              "280b9a361f63b9778c74459af2c922fd284f6633eb68952426e0478e621e570d", // 0 events
	"postfix-grok-patterns/test/postscreen_0028.yaml":                              "f6b3c19ae4964c938174ba66a0cd712c07d33a0519b4f914d71656e3f33527c9", // 0 events
	"postfix-grok-patterns/test/postscreen_0029.yaml":                              "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/postscreen_0030.yaml":                              "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/postsuper_0001.yaml":                               "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/postsuper_0002.yaml":                               "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/postsuper_0003.yaml":                               "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/postsuper_0004.yaml":                               "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/postsuper_0005.yaml":                               "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/postsuper_0006.yaml":                               "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/postsuper_0007.yaml":                               "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/postsuper_0008.yaml":                               "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/qmgr_0001.yaml":                                    "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/qmgr_0002.yaml":                                    "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/qmgr_0003.yaml":                                    "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/qmgr_0004.yaml":                                    "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/qmgr_0005.yaml":                                    "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/qmgr_0006.yaml":                                    "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/relay_0001.yaml":                                   "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/scache_0001.yaml":                                  "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/scache_0002.yaml":                                  "28d3dacd9c3cf05ce9659dc5ca5644144987e7bd8c0c14032e37581daf6040e3", // 0 events
	"postfix-grok-patterns/test/scache_0003.yaml":                                  "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/scache_0004.yaml":                                  "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/script_0001.yaml":                                  "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/sendmail_0001.yaml":                                "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/smtp_0001.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0002.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0003.yaml":                                    "6a06109cd6faf73ee27b829e71c5e711241490ce89241d053c22ed72cce0b3e2", // 0 events
	"postfix-grok-patterns/test/smtp_0004.yaml":                                    "6a06109cd6faf73ee27b829e71c5e711241490ce89241d053c22ed72cce0b3e2", // 0 events
	"postfix-grok-patterns/test/smtp_0005.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0006.yaml":                                    "e8f33d70c8e3d190f04692c772c911152fab86e70880c3aa1e6380a48daaeb49", // 0 events
	"postfix-grok-patterns/test/smtp_0007.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0015.yaml":                                    "6a06109cd6faf73ee27b829e71c5e711241490ce89241d053c22ed72cce0b3e2", // 0 events
	"postfix-grok-patterns/test/smtp_0016.yaml":                                    "6a06109cd6faf73ee27b829e71c5e711241490ce89241d053c22ed72cce0b3e2", // 0 events
	"postfix-grok-patterns/test/smtp_0017.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0018.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0019.yaml":                                    "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/smtp_0020.yaml":                                    "e8f33d70c8e3d190f04692c772c911152fab86e70880c3aa1e6380a48daaeb49", // 0 events
	"postfix-grok-patterns/test/smtp_0021.yaml":                                    "e8f33d70c8e3d190f04692c772c911152fab86e70880c3aa1e6380a48daaeb49", // 0 events
	"postfix-grok-patterns/test/smtp_0022.yaml":                                    "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/smtp_0023.yaml":                                    "e8f33d70c8e3d190f04692c772c911152fab86e70880c3aa1e6380a48daaeb49", // 0 events
	"postfix-grok-patterns/test/smtp_0024.yaml":                                    "e8f33d70c8e3d190f04692c772c911152fab86e70880c3aa1e6380a48daaeb49", // 0 events
	"postfix-grok-patterns/test/smtp_0025.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0026.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0027.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0028.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0029.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0030.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0031.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0032.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0033.yaml":                                    "e8f33d70c8e3d190f04692c772c911152fab86e70880c3aa1e6380a48daaeb49", // 0 events
	"postfix-grok-patterns/test/smtp_0034.yaml":                                    "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtp_0035.yaml":                                    "6fc3d9f5c4c79734c6ecf1baf1c37920cf90a317baf3bef1f0b6bed4647d371a", // 0 events
	"postfix-grok-patterns/test/smtp_0036.yaml":                                    "f6b3c19ae4964c938174ba66a0cd712c07d33a0519b4f914d71656e3f33527c9", // 0 events
	"postfix-grok-patterns/test/smtpd_0001.yaml":                                   "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/smtpd_0002.yaml":                                   "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/smtpd_0003.yaml":                                   "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/smtpd_0004.yaml":                                   "f6b3c19ae4964c938174ba66a0cd712c07d33a0519b4f914d71656e3f33527c9", // 0 events
	"postfix-grok-patterns/test/smtpd_0005.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtpd_0006.yaml":                                   "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/smtpd_0007.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtpd_0008.yaml":                                   "f6b3c19ae4964c938174ba66a0cd712c07d33a0519b4f914d71656e3f33527c9", // 0 events
	"postfix-grok-patterns/test/smtpd_0009.yaml":                                   "f6b3c19ae4964c938174ba66a0cd712c07d33a0519b4f914d71656e3f33527c9", // 0 events
	"postfix-grok-patterns/test/smtpd_0010.yaml":                                   "5d5232db3ab10eb7b496c3b420b423fec35fece9827986d94c498067cfc77f5d", // 0 events
	"postfix-grok-patterns/test/smtpd_0011.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtpd_0012.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtpd_0013.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtpd_0014.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtpd_0015.yaml":                                   "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/smtpd_0016.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtpd_0017.yaml":                                   "63b0cd21d4d885e92d0b80ae4f0a86da84a62053bdb50e8bbd72a14d66aac90a", // 0 events
	"postfix-grok-patterns/test/smtpd_0018.yaml":                                   "63b0cd21d4d885e92d0b80ae4f0a86da84a62053bdb50e8bbd72a14d66aac90a", // 0 events
	"postfix-grok-patterns/test/smtpd_0019.yaml":                                   "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/smtpd_0020.yaml":                                   "5d5232db3ab10eb7b496c3b420b423fec35fece9827986d94c498067cfc77f5d", // 0 events
	"postfix-grok-patterns/test/smtpd_0021.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtpd_0022.yaml":                                   "5d5232db3ab10eb7b496c3b420b423fec35fece9827986d94c498067cfc77f5d", // 0 events
	"postfix-grok-patterns/test/smtpd_0023.yaml":                                   "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/smtpd_0024.yaml":                                   "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/smtpd_0025.yaml":                                   "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/smtpd_0026.yaml":                                   "9a8f9d25f586428a3c1c30b4f1e780d595dd57fb73aa3fbfe8d7c6b35e6fb875", // 0 events
	"postfix-grok-patterns/test/smtpd_0027.yaml":                                   "549e02bbc62ace7f9a7ead98da182317c3646f5964084e467ba82558b07ff11e", // 0 events
	"postfix-grok-patterns/test/smtpd_0028.yaml":                                   "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/smtpd_0029.yaml":                                   "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/smtpd_0030.yaml":                                   "f6b3c19ae4964c938174ba66a0cd712c07d33a0519b4f914d71656e3f33527c9", // 0 events
	"postfix-grok-patterns/test/smtpd_0031.yaml":                                   "f6b3c19ae4964c938174ba66a0cd712c07d33a0519b4f914d71656e3f33527c9", // 0 events
	"postfix-grok-patterns/test/smtpd_0032.yaml":                                   "75ae85a433f0944a231c8b7e80a6b69b8f9719e7fd23a82f7cbc14e8d8a0286e", // 0 events
	"postfix-grok-patterns/test/smtpd_0033.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtpd_0034.yaml":                                   "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/smtpd_0035.yaml":                                   "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/smtpd_0036.yaml":                                   "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/smtpd_0037.yaml":                                   "f6b3c19ae4964c938174ba66a0cd712c07d33a0519b4f914d71656e3f33527c9", // 0 events
	"postfix-grok-patterns/test/smtpd_0038.yaml":                                   "280b9a361f63b9778c74459af2c922fd284f6633eb68952426e0478e621e570d", // 0 events
	"postfix-grok-patterns/test/smtpd_0039.yaml":                                   "28d3dacd9c3cf05ce9659dc5ca5644144987e7bd8c0c14032e37581daf6040e3", // 0 events
	"postfix-grok-patterns/test/tls_features_0001.yaml":                            "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/tls_features_0002.yaml":                            "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/tls_features_0003.yaml":                            "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/tls_features_0004.yaml":                            "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/tls_features_0005.yaml":                            "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/tls_features_0006.yaml":                            "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/tls_features_0007.yaml":                            "28d3dacd9c3cf05ce9659dc5ca5644144987e7bd8c0c14032e37581daf6040e3", // 0 events
	"postfix-grok-patterns/test/tls_features_0008.yaml":                            "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/tls_features_0009.yaml":                            "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/tls_features_0010.yaml":                            "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/tls_features_0011.yaml":                            "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/tls_features_0012.yaml":                            "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-grok-patterns/test/tlsmgr_0001.yaml":                                  "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/tlsproxy_0001.yaml":                                "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/tlsproxy_0002.yaml":                                "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/trivial_rewrite_0001.yaml":                         "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/trivial_rewrite_0002.yaml":                         "9bd4312909dd0cde96e1180a2b659d3c3cd326b020193d3818a8ed87b76060a6", // 0 events
	"postfix-grok-patterns/test/verify_0001.yaml":                                  "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/verify_0002.yaml":                                  "7ef4187bfbed07df3221d0656828f2f021a215ce6b114b97af9377f32286d3d9", // 0 events
	"postfix-grok-patterns/test/virtual_0001.yaml":                                 "636e62328ae260539bf0ab8dc2fc085a3698bab44991bc6366f168f25e5baf74", // 0 events
	"postfix-log-parser-youyo/test-iso8601.log":                                    "2de627b39e0d5242e3643d48b19111cb9d9807b5a56a637d21f80bd7e9bed16b", // 26 events
	"postfix-log-parser-youyo/test-milter.log":                                     "78472d4022ca6cbd8795f10fec8619e1227a334fcf298ea5de5e638bc59505fb", // 6 events
	"postfix-log-parser-youyo/test.log":                                            "5c0ebc75a678a8ab45a74088f541523a44fa574b60ec67966cae84b5be57ef06", // 10 events
	"postfix-logsums/mail.log.gz":                                                  "c4c03968691ab6faf55ebfbb3aaba9b0b535d51c1c0f9a72807dadebcfeb11b9", // 1524 events: 180 of them amavis Passed verdicts (Scan)
	"postfix_exporter-digineo/mail.log":                                            "02cdb3371d0e9c8d8076dc989f90d284c767cc5832272d655e2600df644244a1", // 8 events
}

func eventsDigest(t testing.TB, file string) (string, int) {
	t.Helper()
	f, err := os.Open(filepath.Join(maildata, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	enc := json.NewEncoder(h)
	n := 0
	st, err := IngestReader(context.Background(), f, configFor(file), func(evs []mailflow.Event) error {
		for _, e := range evs {
			if err := enc.Encode(e); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	fmt.Fprintf(h, "stats %d %d %d %d %d %d %d\n", st.Lines, st.Used, st.Ignored, st.Events, st.Messages, st.Abandoned, st.InvalidUTF8)
	if err := enc.Encode(st.NotUnderstood); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

func maildataFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(maildata, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(maildata, p)
		switch {
		case strings.HasSuffix(p, ".md"), strings.HasSuffix(p, ".json"), strings.HasSuffix(p, ".assert"):
			return nil
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// TestMaildataGoldenEvents: the events emitted for every maildata file are
// byte-identical to those recorded in goldenDigests.
func TestMaildataGoldenEvents(t *testing.T) {
	needMaildata(t)
	files := maildataFiles(t)
	if os.Getenv("MAILTRACE_GOLDEN_PRINT") != "" {
		var b strings.Builder
		for _, f := range files {
			d, n := eventsDigest(t, f)
			fmt.Fprintf(&b, "\t%q: %q, // %d events\n", f, d, n)
		}
		t.Logf("goldenDigests:\n%s", b.String())
		return
	}
	if len(files) != len(goldenDigests) {
		t.Errorf("%d maildata files, %d golden digests", len(files), len(goldenDigests))
	}
	// IngestReader on one goroutine and pipelined over two: both ways must
	// give the same bytes
	defer func(v bool) { pipelineIngest = v }(pipelineIngest)
	for _, on := range []bool{false, true} {
		pipelineIngest = on
		for _, f := range files {
			want, ok := goldenDigests[f]
			if !ok {
				t.Errorf("%s: no golden digest", f)
				continue
			}
			if got, n := eventsDigest(t, f); got != want {
				t.Errorf("%s (pipelined %v): events digest %s (%d events), want %s", f, pipelined(), got, n, want)
			}
		}
	}
}
