package ism

import (
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/ipsec"
)

// swanPings is how many echo requests the wire cases capture.
const swanPings = 5

// TestSwanWireTshark: with ISM and charon negotiating a tunnel (ISM as
// initiator and as responder), a ping is captured on ISM's veth and tshark
// decrypts the ESP (in UDP, since charon's userspace ESP always
// encapsulates) with the keys IKE installed, read through the test-only
// hook: every ICV is good and the inner echo requests and replies are
// there; with a spoiled key tshark refuses them. With IKEv1 and with
// IKEv2 (the child SA's KEYMAT, RFC 7296 §2.17).
func TestSwanWireTshark(t *testing.T) {
	t.Parallel()
	cases := []struct {
		transform, rule, ike, esp string
		version                   int
	}{
		{"esp-aes128-hmac-sha", pskRule("aes128", "sha", 14, ""), "aes128-sha1-modp2048", "aes128-sha1", 1},
		{"esp-aes256-gcm16", pskRule("aes256", "sha256", 14, ""), "aes256-sha256-modp2048", "aes256gcm16", 1},
		{"esp-aes128-hmac-sha", "ipsec ike-version 2\n" + pskRule("aes128", "sha256", 14, ""), "aes128-sha256-modp2048", "aes128-sha1", 2},
	}
	for _, c := range cases {
		for _, role := range swanRoles {
			t.Run(fmt.Sprintf("%s/ikev%d/%s", c.transform, c.version, role), func(t *testing.T) {
				t.Parallel()
				needTool(t, "tshark", "tshark")
				x := newLab(t, swanSpec(ismConf{global: c.rule, transforms: []string{c.transform}, tunnels: []ismTunnel{{}}},
					swanPeer{Version: c.version, Proposals: c.ike, ESP: c.esp}, swantest.Conf{}))
				keys := x.hookKeys()
				x.bringUp(t, role)
				sas := keys.pair(t)
				lab := netlab.New(t)
				capt := startCapture(t, lab, x.env.NSISM, vethOf(t, x.env.NSISM))
				if out, err := runIn(x.env.NSISM, "ping", "-c", fmt.Sprint(swanPings), "-i", "0.2", "-W", "10", "-I", ismHost, swanHost); err != nil {
					t.Fatalf("ping: %v\n%s", err, out)
				}
				pcap := espOnly(t, capt.stop(t, 2*swanPings))
				pkts := tsharkESP(t, pcap, sas)
				checkSwanPings(t, pkts, sas)
				bad := tsharkESP(t, pcap, [2]wireSA{sas[0].spoiled(), sas[1].spoiled()})
				refused := 0
				for _, p := range bad {
					if p.icvGood {
						t.Errorf("spoiled key: tshark found the ICV of SPI 0x%08x seq %d good", p.spi, p.seq)
					}
					if p.icvBad {
						refused++
					}
				}
				if len(bad) != 2*swanPings || refused == 0 {
					t.Errorf("spoiled key: tshark saw %d ESP packets and refused %d ICVs; want %d and some", len(bad), refused, 2*swanPings)
				}
			})
		}
	}
}

// swanKeys collects the SAs IKE installs, keys included, for the judge.
type swanKeys struct {
	mu  sync.Mutex
	sas []wireSA
	in  []bool
}

// hookKeys makes the gateway hand every SA IKE installs to the returned
// collector. Call it before any traffic.
func (x *lab) hookKeys() *swanKeys {
	k := &swanKeys{}
	x.g.seam.keyHook = func(id ipsec.SAID, u ike.UserSA) {
		k.mu.Lock()
		defer k.mu.Unlock()
		k.sas = append(k.sas, wireSA{src: u.Src.String(), dst: u.Dst.String(), proto: u.Transform.Protocol.String(), spi: id.SPI,
			ck: hex.EncodeToString(u.CipherKey), ak: hex.EncodeToString(u.AuthKey), tr: u.Transform, tunnelMode: true})
		k.in = append(k.in, u.Inbound)
	}
	// IKE reads the hook after taking the daemon's lock, which Status
	// takes too: that orders the write above before any read.
	x.g.Exec("show ike sa") //nolint:errcheck // for the lock only
	return k
}

// pair returns the one outbound and the one inbound SA installed.
func (k *swanKeys) pair(t *testing.T) [2]wireSA {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.sas) != 2 || k.in[0] == k.in[1] {
		t.Fatalf("IKE installed %d SAs (inbound %v), want one each way", len(k.sas), k.in)
	}
	if k.in[0] {
		return [2]wireSA{k.sas[1], k.sas[0]}
	}
	return [2]wireSA{k.sas[0], k.sas[1]}
}

// checkSwanPings checks tshark's verdict on the captured ping: every
// packet decrypted with a good ICV, in UDP, the echo requests on the
// outbound SA and the replies on the inbound one, swanPings of each, with
// ESP sequence numbers rising by one.
func checkSwanPings(t *testing.T, pkts []innerPacket, sas [2]wireSA) {
	t.Helper()
	var seqs [2][]uint32
	for _, p := range pkts {
		dir := -1
		for i, s := range sas {
			if s.spi == p.spi {
				dir = i
			}
		}
		src, dst, typ := ismHost, swanHost, 8
		if dir == 1 {
			src, dst, typ = swanHost, ismHost, 0
		}
		switch {
		case dir < 0:
			t.Errorf("ESP with unknown SPI 0x%08x", p.spi)
		case !p.icvGood || !p.decrypted:
			t.Errorf("SPI 0x%08x seq %d: ICV good %v, decrypted %v", p.spi, p.seq, p.icvGood, p.decrypted)
		case !p.udp:
			t.Errorf("SPI 0x%08x seq %d: not in UDP", p.spi, p.seq)
		case p.src != src || p.dst != dst || p.icmpType != typ:
			t.Errorf("SPI 0x%08x seq %d carries %s → %s ICMP type %d, want %s → %s type %d", p.spi, p.seq, p.src, p.dst, p.icmpType, src, dst, typ)
		default:
			seqs[dir] = append(seqs[dir], p.seq)
		}
	}
	for dir, s := range seqs {
		if len(s) != swanPings {
			t.Errorf("SPI 0x%08x: %d good packets, want %d", sas[dir].spi, len(s), swanPings)
			continue
		}
		for i := 1; i < len(s); i++ {
			if s[i] != s[i-1]+1 {
				t.Errorf("SPI 0x%08x: sequence numbers %v", sas[dir].spi, s)
				break
			}
		}
	}
}

// vethOf returns the name of the veth interface in a namespace.
func vethOf(t *testing.T, ns string) string {
	t.Helper()
	// Standard output only: ip warns on standard error when a peer's
	// namespace is going away ("Peer netns reference is invalid").
	b, err := exec.Command("ip", "-n", ns, "-o", "link", "show", "type", "veth").Output()
	out := string(b)
	if err != nil {
		t.Fatalf("ip link: %v\n%s", err, out)
	}
	f := strings.Fields(out)
	if len(f) < 2 {
		t.Fatalf("no veth in %s: %q", ns, out)
	}
	name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
	return name
}

// espOnly keeps a capture's ESP packets, without the IKE messages and
// NAT-T keepalives that share UDP port 4500, in a new file.
func espOnly(t *testing.T, pcap string) string {
	t.Helper()
	out := filepath.Join(filepath.Dir(pcap), "esp.pcap")
	cmd := exec.CommandContext(judgeContext(t), "tshark", "-n", "-r", pcap, "-Y", "esp", "-w", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tshark -Y esp: %v\n%s", err, b)
	}
	return out
}
