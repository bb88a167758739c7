package ike

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// TestDPDResolve: a tunnel's zero timers take the global ones, then the
// defaults; nil takes the global setting whole.
func TestDPDResolve(t *testing.T) {
	c := Config{DPD: ipsec.DPD{Enabled: true, Idle: 10 * time.Second, Retries: 5}}
	tu := Tunnel{}
	if got := c.TunnelDPD(&tu); !got.Enabled || got.Idle != 10*time.Second || got.Retries != 5 || got.Sent != ipsec.DefaultDPDSent ||
		got.Silent != ipsec.DefaultDPDSilent || got.RetryInterval != ipsec.DefaultDPDRetryInterval {
		t.Errorf("global: %+v", got)
	}
	tu.DPD = &ipsec.DPD{Enabled: false, Silent: time.Second}
	if got := c.TunnelDPD(&tu); got.Enabled || got.Silent != time.Second || got.Idle != 10*time.Second || got.Retries != 5 {
		t.Errorf("tunnel: %+v", got)
	}
	if got := (&Config{}).TunnelDPD(&Tunnel{}); got.Enabled || got.Sent != 30*time.Second || got.Silent != time.Minute ||
		got.Idle != 150*time.Second || got.RetryInterval != 5*time.Second || got.Retries != 3 {
		t.Errorf("defaults: %+v, want the seed's 30 s, 60 s and 150 s", got)
	}
	if h := c.HoldDown(&tu); h != ipsec.DefaultFailoverHoldDown {
		t.Errorf("hold-down %v", h)
	}
	c.FailoverHoldDown = 5 * time.Second
	if h := c.HoldDown(&tu); h != 5*time.Second {
		t.Errorf("global hold-down %v", h)
	}
	tu.FailoverHoldDown = -1
	if h := c.HoldDown(&tu); h != 0 {
		t.Errorf("hold-down off: %v", h)
	}
}

// TestValidateFailoverAndDPD: a backup destination must be another
// address of the source's family, next to a destination address; DPD
// timers and counts are not negative. Every problem is reported.
func TestValidateFailoverAndDPD(t *testing.T) {
	tr, _ := transform.Lookup("esp-aes128-hmac-sha")
	base := func(name string) Tunnel {
		return Tunnel{Name: name, Source: netip.MustParseAddr("192.0.2.1"), Destination: netip.MustParseAddr("192.0.2.2"),
			TransformSet:  []transform.Transform{tr},
			LocalSelector: selector.FromPrefix(netip.MustParsePrefix("198.51.100.0/24")), RemoteSelector: selector.FromPrefix(netip.MustParsePrefix("203.0.113.0/24"))}
	}
	good := base("good")
	good.BackupDestination = netip.MustParseAddr("192.0.2.3")
	good.DPD = &ipsec.DPD{Enabled: true, Idle: time.Second}
	self := base("self")
	self.BackupDestination = self.Destination
	fqdn := base("fqdn")
	fqdn.Destination, fqdn.RemoteID = netip.Addr{}, Identity{Kind: IDFQDN, Name: "peer.example"}
	fqdn.BackupDestination = netip.MustParseAddr("192.0.2.3")
	family := base("family")
	family.BackupDestination = netip.MustParseAddr("2001:db8::3")
	negative := base("negative")
	negative.DPD = &ipsec.DPD{Enabled: true, Silent: -time.Second}
	policies := []Policy{{Encryption: EncAES128, Hash: HashSHA1, Auth: AuthPSK, Group: 14}}
	if err := (&Config{Policies: policies, Tunnels: []Tunnel{good}}).Validate(); err != nil {
		t.Fatalf("valid configuration refused: %v", err)
	}
	err := (&Config{Policies: policies, Tunnels: []Tunnel{self, fqdn, family, negative}, DPD: ipsec.DPD{Retries: -1}}).Validate()
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{`"self": the backup destination`, `"fqdn": a backup destination needs a destination address`,
		`"family": backup destination`, `"negative": negative DPD`, "ike: negative DPD"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
