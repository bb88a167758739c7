package config

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

func mustParseFile(t *testing.T, path string) *Config {
	t.Helper()
	c, err := ParseFile(path)
	if err != nil {
		t.Fatalf("ParseFile(%s): %v", path, err)
	}
	return c
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse("test.conf", strings.NewReader(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func unhex(t *testing.T, s string) ipsec.Key {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGoodFilesParse(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.conf")
	if len(files) < 3 {
		t.Fatalf("only %d good files", len(files))
	}
	for _, f := range files {
		mustParseFile(t, f)
	}
}

// TestManualPair checks the two ends of the manual example: each field,
// and that one end's inbound SA is the other end's outbound SA.
func TestManualPair(t *testing.T) {
	gw1 := mustParseFile(t, "testdata/good/manual-gw1.conf")
	gw2 := mustParseFile(t, "testdata/good/manual-gw2.conf")
	a := netip.MustParseAddr

	tn := gw1.Tunnel("branch1")
	if tn == nil || len(gw1.Tunnels) != 1 {
		t.Fatalf("tunnels %v", gw1.Tunnels)
	}
	esp3des, _ := transform.Lookup("esp-3des-hmac-sha")
	rng, _ := selector.FromRange(a("203.0.113.10"), a("203.0.113.50"))
	checks := []struct {
		name      string
		got, want any
	}{
		{"pos", tn.Pos, Pos{File: "testdata/good/manual-gw1.conf", Line: 8}},
		{"type", tn.Type, Manual},
		{"mode", tn.Mode, ipsec.Tunnel},
		{"operational vr", tn.OperationalVR, VR{Name: "default"}},
		{"transport vr", tn.TransportVR, VR{Name: "transit", Netns: "transit0"}},
		{"address", tn.Address, netip.MustParsePrefix("198.51.100.253/30")},
		{"source", tn.TunnelSource, a("192.0.2.1")},
		{"destination", tn.TunnelDestination, Endpoint{Addr: a("192.0.2.2")}},
		{"transform set", tn.TransformSet, TransformSet{Name: "legacy-manual", Transforms: []transform.Transform{esp3des}}},
		{"local selector", tn.LocalSelector, selector.FromPrefix(netip.MustParsePrefix("198.51.100.0/25"))},
		{"remote selector", tn.RemoteSelector, rng},
		{"lifetime", tn.Lifetime, ipsec.Lifetime{}},
		{"dpd", tn.DPD, ipsec.DPD{}},
		{"replay", tn.ReplayWindow, DefaultReplayWindow},
		{"driver", tn.Driver, DriverAuto},
		{"inbound", *tn.Inbound, digested(SA{Direction: ipsec.Inbound, Protocol: transform.ESP, SPI: 0x1001, Transform: esp3des, Destination: a("192.0.2.1"),
			CipherKey: unhex(t, "6aeb4f25aa973b14fe0e8d466562cc73dadf788764a65a66"), AuthKey: unhex(t, "778551c3dba82195e30b004a31d6de5e1ff9ed35")})},
		{"outbound", *tn.Outbound, digested(SA{Direction: ipsec.Outbound, Protocol: transform.ESP, SPI: 0x2001, Transform: esp3des, Destination: a("192.0.2.2"),
			CipherKey: unhex(t, "181445f5a971ebc0d8c46f7b93fc12a9a303f7f754c82100"), AuthKey: unhex(t, "bd5d4772445dc12bd4fd9b9161a801c10f3343e6")})},
		{"routes", gw1.Routes, []Route{{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Tunnel: "branch1", VR: "default"}}},
		{"vrs", gw1.VRs, []VR{{Name: "default"}, {Name: "transit", Netns: "transit0"}}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, c.got, c.want)
		}
	}
	hq := gw2.Tunnel("hq")
	for _, pair := range [][2]*SA{{tn.Inbound, hq.Outbound}, {tn.Outbound, hq.Inbound}} {
		x, y := pair[0], pair[1]
		if x.SPI != y.SPI || x.Destination != y.Destination || !bytes.Equal(x.CipherKey, y.CipherKey) || !bytes.Equal(x.AuthKey, y.AuthKey) {
			t.Errorf("gw1 %v SA 0x%x does not match gw2 %v SA 0x%x", x.Direction, x.SPI, y.Direction, y.SPI)
		}
	}
	if hq.LocalSelector != tn.RemoteSelector || hq.RemoteSelector != tn.LocalSelector {
		t.Errorf("selectors do not mirror: gw1 %v/%v gw2 %v/%v", tn.LocalSelector, tn.RemoteSelector, hq.LocalSelector, hq.RemoteSelector)
	}
	if hq.OperationalVR.Name != DefaultVR {
		t.Errorf("gw2 operational VR %v, want the default", hq.OperationalVR)
	}
}

func TestSignaled(t *testing.T) {
	c := mustParseFile(t, "testdata/good/signaled.conf")
	a := netip.MustParseAddr
	pos := func(line int) Pos { return Pos{File: "testdata/good/signaled.conf", Line: line} }
	b1, dsl, v6 := c.Tunnel("branch1"), c.Tunnel("dsl245"), c.Tunnel("v6lab")
	if b1 == nil || dsl == nil || v6 == nil {
		t.Fatalf("tunnels %v", c.Tunnels)
	}
	gcm, _ := transform.Lookup("esp-aes128-gcm16")
	checks := []struct {
		name      string
		got, want any
	}{
		{"global lifetime", c.Lifetime, ipsec.Lifetime{Time: 8 * time.Hour, Bytes: 102400 * 1024}},
		{"policies", c.IKEPolicies, []IKEPolicy{
			{Priority: 10, Encryption: IKEAES256, Hash: IKESHA256, Group: 14, Authentication: PreSharedKeyAuth, Lifetime: 24 * time.Hour,
				Pos: pos(13), AuthPos: pos(17)},
			{Priority: 20, Encryption: IKEAES128, Hash: IKESHA1, Group: 2, Authentication: RSASignatureAuth, Lifetime: 8 * time.Hour,
				Pos: pos(19), AuthPos: pos(23)},
		}},
		{"certificates", c.Certificates, Certificates{Local: "/etc/ism/hub.pem", Key: "/etc/ism/hub.key", CAs: []string{"/etc/ism/ca.pem"}, Pos: pos(25)}},
		{"psk ascii", c.PreSharedKeys[0], PreSharedKey{Addr: a("192.0.2.2"), Key: ipsec.Key("branch one secret")}},
		{"psk hex", c.PreSharedKeys[1], PreSharedKey{Addr: a("192.0.2.3"), Key: ipsec.Key("one two three")}},
		{"psk identity", c.PreSharedKeys[2], PreSharedKey{Identity: Identity{Kind: IdentityFQDN, Value: "branch245.customer77.isp.net"}, Key: ipsec.Key("dsl-secret-245")}},
		{"b1 type", b1.Type, Signaled},
		{"b1 transforms", b1.TransformSet.Transforms[0], gcm},
		{"b1 vr", b1.OperationalVR, VR{Name: "customer", Netns: "cust0"}},
		{"b1 backup", b1.BackupDestination, Endpoint{Addr: a("192.0.2.3")}},
		{"b1 lifetime", b1.Lifetime, ipsec.Lifetime{Time: time.Hour, Bytes: 102400 * 1024}},
		{"b1 pfs", b1.PFSGroup, DHGroup(14)},
		{"b1 identities", [2]Identity{b1.LocalIdentity, b1.RemoteIdentity}, [2]Identity{
			{Kind: IdentityAddress, Value: "192.0.2.1", Addr: a("192.0.2.1")},
			{Kind: IdentityAddress, Value: "192.0.2.2", Addr: a("192.0.2.2")}}},
		{"b1 ike", [2]any{b1.IKEVersion, b1.IKEMode}, [2]any{2, MainMode}},
		{"b1 dpd", b1.DPD, ipsec.DPD{Enabled: true, Sent: 20 * time.Second, Silent: 40 * time.Second, Idle: 120 * time.Second, RetryInterval: 3 * time.Second, Retries: 5}},
		{"b1 hold-down", b1.FailoverHoldDown, 120 * time.Second},
		{"b1 replay", b1.ReplayWindow, 4096},
		{"b1 esn", b1.ESN, true},
		{"b1 sas", [2]*SA{b1.Inbound, b1.Outbound}, [2]*SA{}},
		{"dsl destination", dsl.TunnelDestination, Endpoint{FQDN: "branch245.customer77.isp.net"}},
		{"dsl identities", [2]Identity{dsl.LocalIdentity, dsl.RemoteIdentity}, [2]Identity{
			{Kind: IdentityFQDN, Value: "hub.isp.net"},
			{Kind: IdentityUserFQDN, Value: "user4919@branch245.customer77.isp.net"}}},
		{"dsl mode", dsl.IKEMode, AggressiveMode},
		{"dsl lifetime", dsl.Lifetime, ipsec.Lifetime{Time: 8 * time.Hour, Bytes: 102400 * 1024}},
		{"dsl dpd", dsl.DPD, ipsec.DPD{Sent: 30 * time.Second, Silent: 60 * time.Second, Idle: 150 * time.Second, RetryInterval: 5 * time.Second, Retries: 3}},
		{"dsl udp", dsl.UDPEncapPort, uint16(4500)},
		{"dsl selectors", [2]selector.Selector{dsl.LocalSelector, dsl.RemoteSelector}, [2]selector.Selector{
			selector.AnyOf(a("0.0.0.0")), selector.AnyOf(a("0.0.0.0"))}},
		{"v6 selectors", v6.LocalSelector, selector.AnyOf(a("::"))},
		{"v6 address", v6.Address6, netip.MustParsePrefix("2001:db8:100::1/64")},
		{"v6 ike", v6.IKEVersion, 1},
		{"v6 mtu", v6.MTU, int32(1400)},
		{"v6 driver", v6.Driver, DriverSoftware},
		{"routes", c.Routes, []Route{
			{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Tunnel: "branch1", VR: "customer"},
			{Prefix: netip.MustParsePrefix("2001:db8:200::/48"), Tunnel: "v6lab", VR: "default"}}},
		{"policy routes", c.PolicyRoutes, []PolicyRoute{{Source: netip.MustParsePrefix("198.51.100.128/25"), Tunnel: "dsl245", VR: "default"}}},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s: got %+v, want %+v", ch.name, ch.got, ch.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, `ipsec transform-set t
  transform 1 esp-aes128-gcm16
ipsec pre-shared-key address 192.0.2.2 ascii k
interface tunnel ipsec:a
  tunnel source 192.0.2.1
  tunnel destination 192.0.2.2
  tunnel transform-set t
`)
	tn := c.Tunnels[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"lifetime", c.Lifetime, ipsec.Lifetime{Time: 28800 * time.Second, Bytes: 102400 * 1024}},
		{"dpd", c.DPD, ipsec.DPD{Sent: 30 * time.Second, Silent: 60 * time.Second, Idle: 150 * time.Second, RetryInterval: 5 * time.Second, Retries: 3}},
		{"hold-down", c.FailoverHoldDown, 60 * time.Second},
		{"back-off", c.Backoff, Backoff{Initial: time.Second, Maximum: 30 * time.Second}},
		{"replay", c.ReplayWindow, 1024},
		{"driver", c.Driver, DriverAuto},
		{"policies", c.IKEPolicies, []IKEPolicy{DefaultIKEPolicy()}},
		{"control", c.ControlSocket, DefaultControlSocket},
		{"metrics", c.Metrics.IsValid(), false},
		{"traps", c.SNMP.Traps, []Trap(nil)},
		{"vr", [2]VR{tn.OperationalVR, tn.TransportVR}, [2]VR{{Name: "default"}, {Name: "default"}}},
		{"type", tn.Type, Signaled},
		{"mode", tn.Mode, ipsec.Tunnel},
		{"tunnel lifetime", tn.Lifetime, c.Lifetime},
		{"tunnel dpd", tn.DPD, c.DPD},
		{"ike", [3]any{tn.IKEVersion, tn.IKEMode, tn.PFSGroup}, [3]any{1, MainMode, DHGroup(0)}},
		{"udp", tn.UDPEncapPort, uint16(0)},
		{"esn", tn.ESN, false},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s: got %+v, want %+v", ch.name, ch.got, ch.want)
		}
	}
}

// TestTransportVRDefaultsToOperational: a tunnel in a declared VR without
// transport-virtual-router has its endpoints in that same VR.
func TestTransportVRDefaultsToOperational(t *testing.T) {
	c := mustParse(t, `virtual-router cust netns c0
ipsec transform-set t
  transform 1 esp-aes128-gcm16
ipsec pre-shared-key address 192.0.2.2 ascii k
interface tunnel ipsec:a
  virtual-router cust
  tunnel source 192.0.2.1
  tunnel destination 192.0.2.2
  tunnel transform-set t
`)
	if got := c.Tunnels[0].TransportVR; got != (VR{Name: "cust", Netns: "c0"}) {
		t.Errorf("transport VR %v", got)
	}
}

func TestHexKeyPrefix(t *testing.T) {
	const tpl = `ipsec transform-set t
  transform 1 esp-aes128-hmac-sha
interface tunnel ipsec:a
  tunnel source 192.0.2.1
  tunnel destination 192.0.2.2
  tunnel transform-set t
  tunnel sa inbound esp spi 4096 cipher-key %s auth-key %s
  tunnel sa outbound esp spi 0x1001 cipher-key %s auth-key %s
`
	ck, ak := "00112233445566778899aabbccddeeff", "0102030405060708090a0b0c0d0e0f1011121314"
	for _, pre := range []string{"", "0x", "0X"} {
		src := strings.NewReplacer("%s", pre+strings.ToUpper(ck)).Replace(tpl)
		src = strings.Replace(src, "auth-key "+pre+strings.ToUpper(ck), "auth-key "+pre+ak, 2)
		c := mustParse(t, src)
		in := c.Tunnels[0].Inbound
		if !bytes.Equal(in.CipherKey, unhex(t, ck)) || !bytes.Equal(in.AuthKey, unhex(t, ak)) || in.SPI != 4096 {
			t.Errorf("prefix %q: SA %+v", pre, in)
		}
		if c.Tunnels[0].Outbound.SPI != 0x1001 {
			t.Errorf("prefix %q: outbound SPI %#x", pre, c.Tunnels[0].Outbound.SPI)
		}
	}
}

func TestSyntaxDetails(t *testing.T) {
	c := mustParse(t, "! comment\r\n\r\nIPSEC Replay-Window 0\r\n   ! indented comment\ndriver\t kernel\n")
	if c.ReplayWindow != 0 || c.Driver != DriverKernel {
		t.Errorf("replay window %d, want 0 (keywords are case-insensitive, CRLF accepted)", c.ReplayWindow)
	}
	_, err := Parse("x.conf", strings.NewReader("\tdriver kernel\n"))
	if err == nil || !strings.Contains(err.Error(), "x.conf:1: indented line") {
		t.Errorf("indented top-level line: %v", err)
	}
	c = mustParse(t, `ipsec pre-shared-key address 192.0.2.2 ascii "a \"quoted\" key \\ with spaces"`)
	if got := string(c.PreSharedKeys[0].Key); got != `a "quoted" key \ with spaces` {
		t.Errorf("quoted key %q", got)
	}
}

func TestRelativeCertificatePaths(t *testing.T) {
	c, err := Parse("/etc/ism/ismd.conf", strings.NewReader("ipsec local-certificate certs/gw.pem key ../keys/gw.key\nipsec ca-certificate /opt/ca.pem\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Certificates{Local: "/etc/ism/certs/gw.pem", Key: "/etc/keys/gw.key", CAs: []string{"/opt/ca.pem"}, Pos: Pos{File: "/etc/ism/ismd.conf", Line: 1}}
	if !reflect.DeepEqual(c.Certificates, want) {
		t.Errorf("got %+v, want %+v", c.Certificates, want)
	}
}

func TestSNMPAndMetrics(t *testing.T) {
	c := mustParse(t, `snmp-server host 192.0.2.9 version 2c community "pub lic"
snmp-server host 2001:db8::9 udp-port 1162 version 3 user ops auth sha256 authpass1 priv aes privpass1
snmp-server host 192.0.2.10 version 3 user watcher
snmp-server engine-id 0x8000000001020304
snmp-server enable traps failover tunnel-down
metrics listen [::1]:9469
control socket /run/ismd.sock
dpdk eal-args --no-huge -m 256
dpdk vdev crypto_aesni_mb0
dpdk vdev crypto_null0
`)
	want := SNMP{
		Hosts: []TrapHost{
			{Addr: netip.MustParseAddrPort("192.0.2.9:162"), Version: SNMPv2c, Community: ipsec.Key("pub lic")},
			{Addr: netip.MustParseAddrPort("[2001:db8::9]:1162"), Version: SNMPv3, User: "ops",
				AuthProtocol: "sha256", AuthPassword: ipsec.Key("authpass1"), PrivProtocol: "aes", PrivPassword: ipsec.Key("privpass1")},
			{Addr: netip.MustParseAddrPort("192.0.2.10:162"), Version: SNMPv3, User: "watcher"},
		},
		EngineID: []byte{0x80, 0, 0, 0, 1, 2, 3, 4},
		Traps:    []Trap{TrapTunnelDown, TrapFailover},
	}
	if !reflect.DeepEqual(c.SNMP, want) {
		t.Errorf("snmp\n got %+v\nwant %+v", c.SNMP, want)
	}
	if c.Metrics != netip.MustParseAddrPort("[::1]:9469") || c.ControlSocket != "/run/ismd.sock" {
		t.Errorf("metrics %v control %v", c.Metrics, c.ControlSocket)
	}
	if !reflect.DeepEqual(c.DPDK, DPDK{EALArgs: []string{"--no-huge", "-m", "256"}, VDevs: []string{"crypto_aesni_mb0", "crypto_null0"}}) {
		t.Errorf("dpdk %+v", c.DPDK)
	}
	c = mustParse(t, "snmp-server host 192.0.2.9 version 2c community public\n")
	if !reflect.DeepEqual(c.SNMP.Traps, AllTraps()) {
		t.Errorf("traps with a host and no enable line: %v, want all", c.SNMP.Traps)
	}
}

func TestFileTooLarge(t *testing.T) {
	r := io.LimitReader(repeatReader('!'), MaxFileSize+1)
	_, err := Parse("big.conf", r)
	var ce Error
	if !errors.As(err, &ce) || ce.File != "big.conf" || !strings.Contains(ce.Msg, "larger than") {
		t.Errorf("got %v", err)
	}
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestParseFileMissing(t *testing.T) {
	_, err := ParseFile(filepath.Join(t.TempDir(), "none.conf"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("got %v", err)
	}
}

// TestBackoff: "ipsec negotiation back-off" with one part left out keeps
// the other's default, unless the initial wait is above the default
// maximum, which then is the initial wait.
func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		line string
		want Backoff
	}{
		{"ipsec negotiation back-off initial 2 maximum 120", Backoff{2 * time.Second, 2 * time.Minute}},
		{"ipsec negotiation back-off initial 5", Backoff{5 * time.Second, 30 * time.Second}},
		{"ipsec negotiation back-off initial 60", Backoff{time.Minute, time.Minute}},
		{"ipsec negotiation back-off maximum 600", Backoff{time.Second, 10 * time.Minute}},
	} {
		if got := mustParse(t, c.line+"\n").Backoff; got != c.want {
			t.Errorf("%s: %+v, want %+v", c.line, got, c.want)
		}
	}
}
