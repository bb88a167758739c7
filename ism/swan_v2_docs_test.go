package ism

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/swantest"
)

// docsPath is the configuration guide, whose worked examples tests run.
const docsPath = "../docs/config.md"

// docsExample returns the first block fenced as kind (```kind) after the
// heading in docs/config.md.
func docsExample(t *testing.T, heading, kind string) string {
	t.Helper()
	f, err := os.Open(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	seen, in := false, false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		l := sc.Text()
		switch {
		case l == heading:
			seen = true
		case seen && !in && l == "```"+kind:
			in = true
		case in && l == "```":
			return b.String()
		case in:
			b.WriteString(l + "\n")
		}
	}
	t.Fatalf("%s: no ```%s block after %q", docsPath, kind, heading)
	return ""
}

// TestSwanV2DocsExample: docs/config.md's worked IKEv2 example, the
// gateway's configuration and charon's swanctl.conf as the guide prints
// them (only the namespace of the gateway's VR is the test's), brings the
// tunnel up from either end; traffic goes through, a rekey from the role's
// end runs PFS with the group the guide names, and the show commands say
// what the guide says they say.
func TestSwanV2DocsExample(t *testing.T) {
	t.Parallel()
	const heading = "### An IKEv2 tunnel to a strongSwan peer"
	ismText, swanText := docsExample(t, heading, "ism-file"), docsExample(t, heading, "swanctl")
	for _, role := range swanRoles {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			x := newLab(t, labSpec{charon: &swantest.Conf{Swanctl: swanText},
				a: func(x *lab) string { return strings.Replace(ismText, " netns branch\n", " netns "+x.a+"\n", 1) }})
			x.bringUpChild(t, role, "net", ismHost, swanHost)
			x.traffic(t, ismHost, swanHost)
			x.wantShow(t, "show ike sa", "IKEv2", "aes256-gcm/none/hmac-sha384/ecp384", "hub.example.net")
			x.wantShow(t, "show ipsec tunnel detail hub", "IKEv2: up with 192.0.2.2:4500, child SA esp-aes256-gcm16")
			x.rekeyChild(t, role, map[string]string{"initiator": "hub", "responder": "net"}[role])
			x.waitFor(t, 20*time.Second, "the child SA rekeyed", func() bool { return x.tunnelRekeys(t, "hub") >= 1 })
			x.wantShow(t, "show ipsec tunnel detail hub", "IKEv2: up with 192.0.2.2:4500, child SA esp-aes256-gcm16, PFS group 20")
			x.pingUntil(t, x.env.NSISM, ismHost, swanHost, 2)
		})
	}
}
