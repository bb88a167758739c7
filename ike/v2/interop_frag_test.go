package v2

import (
	"crypto/elliptic"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/internal/swantest"
)

// IKE fragmentation against charon across a path whose MTU is 576 bytes
// (the veth link in both namespaces): certificate chains with many long
// names make IKE_AUTH several kilobytes each way. (RSA-2048 leaves under
// ECDSA intermediates: RSA-4096 keys take most of a minute to make on a
// busy machine under -race.) tshark is
// the judge of the wire: IKE_AUTH goes in several Encrypted Fragment
// payloads, no datagram is over 576 bytes or IP-fragmented, and charon
// reassembles (its log says so) and brings the tunnel up.

const pathMTU = 576

// bigCerts is the fragmentation test's certificates, made once: ISM's
// certificate under two intermediates, charon's under the root, each with
// many long names.
type bigCerts struct {
	root      *swantest.CA
	ism, swan certEnd
}

var (
	bigOnce sync.Once
	bigCert bigCerts
)

func bigCertificates(t *testing.T) bigCerts {
	bigOnce.Do(func() {
		v := swantest.Around(time.Now())
		root, p256 := interopRoot(t), swantest.KeySpec{Curve: elliptic.P256()}
		inter := root.Intermediate(t, "ISM regional CA with a long name for a big chain", p256, v).
			Intermediate(t, "ISM gateways CA with a long name for a big chain", p256, v)
		names := func(fqdn string) []string {
			n := []string{fqdn}
			for i := 0; i < 40; i++ {
				n = append(n, fmt.Sprintf("gateway-%02d.a-long-subdomain-name-for-a-big-certificate.%s", i, fqdn))
			}
			return n
		}
		c, k := inter.Issue(t, swantest.LeafSpec{CommonName: ismFQDN, DNSNames: names(ismFQDN), Key: rsa2k, Validity: v})
		sc, sk := root.Issue(t, swantest.LeafSpec{CommonName: swanFQDN, DNSNames: names(swanFQDN), Key: rsa2k, Validity: v})
		bigCert = bigCerts{root: root, ism: certEnd{certs: &ike.Certificates{Chain: inter.Chain(c), Key: k}, id: ike.Identity{Kind: ike.IDFQDN, Name: ismFQDN}},
			swan: certEnd{certs: &ike.Certificates{Chain: root.Chain(sc), Key: sk}, id: ike.Identity{Kind: ike.IDFQDN, Name: swanFQDN}}}
	})
	if bigCert.root == nil {
		t.Fatal("no certificates")
	}
	return bigCert
}

// tsharkStart bounds tshark's start (loading its dissectors), which takes
// seconds on a busy machine.
const tsharkStart = time.Minute

// tsharkCapture runs tshark in a namespace until stop is called.
type tsharkCapture struct {
	cmd  *exec.Cmd
	path string
}

func startCapture(t *testing.T, ns string) *tsharkCapture {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatal("needs tshark (apt-get install tshark)")
	}
	c := &tsharkCapture{path: filepath.Join(t.TempDir(), "ike.pcap")}
	c.cmd = exec.Command("ip", "netns", "exec", ns, "tshark", "-q", "-i", "any", "-w", c.path, "-f", "udp port 500 or udp port 4500")
	errf, err := os.Create(c.path + ".err")
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = errf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	waitWithin(t, tsharkStart, "tshark capturing", func() bool {
		b, _ := os.ReadFile(c.path + ".err")
		return strings.Contains(string(b), "Capture started")
	})
	return c
}

func (c *tsharkCapture) stop() {
	if c.cmd.Process != nil {
		_ = syscall.Kill(c.cmd.Process.Pid, syscall.SIGINT)
		_ = c.cmd.Wait()
		c.cmd.Process = nil
	}
}

// ikePacket is one captured IKE datagram as tshark dissects it.
type ikePacket struct {
	src            string
	ipLen          int
	ipFragment     bool
	exchange       int
	fragNum, total int
}

// packets returns the captured datagrams.
func (c *tsharkCapture) packets(t *testing.T) []ikePacket {
	t.Helper()
	out, err := exec.Command("tshark", "-r", c.path, "-T", "fields", "-E", "separator=/t", "-e", "ip.src", "-e", "ip.len",
		"-e", "ip.flags.mf", "-e", "ip.frag_offset", "-e", "isakmp.exchangetype", "-e", "isakmp.frag.number", "-e", "isakmp.frag.total").Output()
	if err != nil {
		var stderr []byte
		if e, ok := err.(*exec.ExitError); ok {
			stderr = e.Stderr
		}
		t.Fatalf("tshark: %v: %s", err, stderr)
	}
	var ps []ikePacket
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 7 {
			continue
		}
		p := ikePacket{src: f[0]}
		p.ipLen, _ = strconv.Atoi(f[1])
		off, _ := strconv.Atoi(f[3])
		p.ipFragment = f[2] == "1" || f[2] == "True" || off > 0
		p.exchange, _ = strconv.Atoi(f[4])
		p.fragNum, _ = strconv.Atoi(f[5])
		p.total, _ = strconv.Atoi(f[6])
		ps = append(ps, p)
	}
	return ps
}

// TestInteropFragmentation: both roles, the path MTU 576 bytes, charon
// fragmenting for 576 too (charon.fragment_size).
func TestInteropFragmentation(t *testing.T) {
	t.Parallel()
	roles(t, func(t *testing.T, ismInit bool) {
		b := bigCertificates(t)
		c := certCase{ism: b.ism, swan: b.swan, ismCAs: []*x509.Certificate{b.root.Cert}, swanCAs: []*x509.Certificate{b.root.Cert},
			charon: fmt.Sprintf("fragment_size = %d", pathMTU)}
		cfg := c.config(t)
		cfg.FragmentMTU = pathMTU
		logToTest(t, &cfg)
		env := swantest.New(t)
		if err := env.SetMTU(pathMTU); err != nil {
			t.Fatal(err)
		}
		capt := startCapture(t, env.NSISM)
		x := newInteropIn(t, env, cfg, c.conf(t))
		x.up(t, ismInit)
		x.check(t, swanWant{encr: "AES_CBC", keysize: "128", integ: "HMAC_SHA2_256_128", prf: "PRF_HMAC_SHA2_256", dh: "MODP_2048",
			espEncr: "AES_GCM_16", espKeysize: "128"})
		time.Sleep(300 * time.Millisecond)
		capt.stop()
		frags := map[string]int{}
		for _, p := range capt.packets(t) {
			if p.ipLen > pathMTU || p.ipFragment {
				t.Errorf("a datagram from %s of %d bytes (IP fragment: %v)", p.src, p.ipLen, p.ipFragment)
			}
			if p.exchange == int(IKEAuth) && p.fragNum > 0 {
				frags[p.src]++
			}
		}
		for _, src := range []string{swantest.ISMAddr.String(), swantest.SwanAddr.String()} {
			if frags[src] < 5 {
				t.Errorf("%s sent IKE_AUTH in %d fragments", src, frags[src])
			}
		}
		if !strings.Contains(x.env.Log(), "reassembled fragmented IKE message") {
			t.Error("charon's log does not say it reassembled ISM's IKE_AUTH")
		}
		if n := x.d.Status().Counters.FragmentsReceived; n < 5 {
			t.Errorf("ISM received %d fragments", n)
		}
		t.Logf("IKE_AUTH fragments: %v", frags)
	})
}
