package kernel

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
)

func openXFRM(t *testing.T, ns string) *XFRM {
	t.Helper()
	x, err := OpenXFRM(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func randKey(n int) ipsec.Key {
	k := make(ipsec.Key, n)
	rand.Read(k)
	return k
}

// TestAllocQueryDelete reserves an SPI (the kernel makes a larval SA, which
// needs no ESP support), queries it and deletes it, and checks each step
// with iproute2.
func TestAllocQueryDelete(t *testing.T) {
	needRoot(t)
	ns := newNetNS(t)
	x := openXFRM(t, ns)
	id := ipsec.SAID{Dst: addrB, Protocol: transform.ESP}
	spi, err := x.AllocSPI(id, addrA, ipsec.Tunnel, 7, 0x1000, 0x1fff)
	if err != nil {
		t.Fatal(err)
	}
	if spi < 0x1000 || spi > 0x1fff {
		t.Fatalf("SPI 0x%x outside the range asked for", spi)
	}
	want := fmt.Sprintf("spi 0x%08x", spi)
	if out, err := inNS(ns, "ip", "xfrm", "state"); err != nil || !strings.Contains(out, want) || !strings.Contains(out, "reqid 7 mode tunnel") {
		t.Fatalf("iproute2 does not show the SA (%s, reqid 7): %v\n%s", want, err, out)
	}
	if out := run(t, "ip", "xfrm", "state"); strings.Contains(out, want) {
		t.Fatalf("the SA appeared in the test's own namespace, not in %s", ns)
	}
	id.SPI = spi
	u, err := x.QuerySA(id)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if u.Bytes != 0 || u.Packets != 0 || !u.LastUsed.IsZero() || !u.FirstUsed.IsZero() {
		t.Errorf("unused larval SA reports use: %+v", u)
	}
	if u.Added.IsZero() || u.Added.After(now.Add(time.Hour)) || u.Added.Before(now.Add(-time.Hour)) {
		t.Errorf("add time %v is not about now (%v)", u.Added, now)
	}
	if err := x.DeleteSA(id); err != nil {
		t.Fatal(err)
	}
	if out, _ := inNS(ns, "ip", "xfrm", "state"); strings.Contains(out, want) {
		t.Fatalf("deleted SA still there:\n%s", out)
	}
	if _, err := x.QuerySA(id); !errors.Is(err, ErrNoSA) || !errors.Is(err, unix.ESRCH) {
		t.Errorf("query after delete: %v, want ErrNoSA (ESRCH)", err)
	}
	if err := x.DeleteSA(id); !errors.Is(err, ErrNoSA) {
		t.Errorf("second delete: %v, want ErrNoSA", err)
	}
}

// ipArgs spells an SA for "ip xfrm state add".
func ipArgs(id ipsec.SAID, c *SAConfig) []string {
	a, _ := AlgorithmsFor(c.Transform)
	args := []string{"ip", "xfrm", "state", "add", "src", c.Src.String(), "dst", id.Dst.String(),
		"proto", id.Protocol.String(), "spi", fmt.Sprintf("0x%08x", id.SPI), "mode", c.Mode.String(),
		"reqid", fmt.Sprint(c.ReqID), "replay-window", fmt.Sprint(c.ReplayWindow)}
	flags := []string{}
	if c.Mode == ipsec.Tunnel {
		flags = append(flags, "af-unspec")
	}
	if c.ESN {
		flags = append(flags, "esn")
	}
	if len(flags) > 0 {
		args = append(args, "flag")
		args = append(args, flags...)
	}
	hexKey := func(k []byte) string {
		if len(k) == 0 {
			return ""
		}
		return "0x" + hex.EncodeToString(k)
	}
	switch {
	case a.AEAD != "":
		args = append(args, "aead", a.AEAD, hexKey(c.CipherKey), fmt.Sprint(a.ICVBits))
	case a.Cipher != "":
		args = append(args, "enc", a.Cipher, hexKey(c.CipherKey))
	}
	if a.Auth != "" {
		args = append(args, "auth-trunc", a.Auth, hexKey(c.AuthKey), fmt.Sprint(a.ICVBits))
	}
	if c.Encap != nil {
		args = append(args, "encap", "espinudp", fmt.Sprint(c.Encap.SrcPort), fmt.Sprint(c.Encap.DstPort), "0.0.0.0")
	}
	if c.Limits.Hard.Bytes != 0 {
		args = append(args, "limit", "byte-soft", fmt.Sprint(c.Limits.Soft.Bytes), "limit", "byte-hard", fmt.Sprint(c.Limits.Hard.Bytes))
	}
	return args
}

var iprouteError = regexp.MustCompile(`Error: (.*)\.`)

// TestAddSAJudgedByKernel installs an SA of every transform, with the
// options varied, both through AddSA and through iproute2, and requires the
// kernel's verdicts to match: where the kernel has ESP and AH, both install
// and "ip xfrm state get" shows the same SA; where it has not (this CI
// machine), both are refused with the same errno text, which the kernel only
// reaches after it has parsed every attribute of the request.
func TestAddSAJudgedByKernel(t *testing.T) {
	needRoot(t)
	ns := newNetNS(t)
	x := openXFRM(t, ns)
	spi := uint32(0x10000)
	for i, tr := range transform.All() {
		c := &SAConfig{Src: addrA, Mode: ipsec.Tunnel, Transform: tr, CipherKey: randKey(tr.CipherKeyLen()), AuthKey: randKey(tr.AuthKeyLen()),
			ReplayWindow: 32, ReqID: uint32(i + 1), Inbound: true}
		switch i % 4 {
		case 1:
			c.ReplayWindow = 128
		case 2:
			c.ESN = true
			c.ReplayWindow = 64
		case 3:
			c.Mode = ipsec.Transport
			c.Limits = ipsec.Limits{Soft: ipsec.Lifetime{Bytes: 1 << 20}, Hard: ipsec.Lifetime{Bytes: 2 << 20}}
		}
		if tr.Protocol == transform.ESP && i%3 == 0 {
			c.Encap = &Encap{SrcPort: 4500, DstPort: 4501}
		}
		t.Run(fmt.Sprintf("%s/%d", tr, i%4), func(t *testing.T) {
			spi += 2
			ours := ipsec.SAID{Dst: addrB, SPI: spi, Protocol: tr.Protocol}
			theirs := ours
			theirs.SPI = spi + 1
			err := x.AddSA(ours, c)
			out, ierr := inNS(ns, ipArgs(theirs, c)...)
			for _, k := range [][]byte{c.CipherKey, c.AuthKey} {
				if err != nil && len(k) > 0 && (strings.Contains(err.Error(), hex.EncodeToString(k)) || strings.Contains(err.Error(), string(k))) {
					t.Fatalf("error carries a key: %v", err)
				}
			}
			if (err == nil) != (ierr == nil) {
				t.Fatalf("AddSA: %v; iproute2: %v %s", err, ierr, out)
			}
			if err != nil {
				var e *Error
				m := iprouteError.FindStringSubmatch(out)
				if !errors.As(err, &e) || m == nil || e.Message != m[1] {
					t.Fatalf("kernel verdicts differ: AddSA %v; iproute2 %s", err, out)
				}
				t.Logf("both refused: %s (%s)", e.Message, unix.ErrnoName(e.Errno))
				return
			}
			get := func(id ipsec.SAID) string {
				s, err := inNS(ns, "ip", "xfrm", "state", "get", "src", c.Src.String(), "dst", id.Dst.String(),
					"proto", id.Protocol.String(), "spi", fmt.Sprint(id.SPI))
				if err != nil {
					t.Fatalf("ip xfrm state get: %v: %s", err, s)
				}
				return strings.ReplaceAll(s, fmt.Sprintf("0x%08x", id.SPI), "SPI")
			}
			if a, b := get(ours), get(theirs); a != b {
				t.Errorf("the kernel holds different SAs:\nAddSA:\n%s\niproute2:\n%s", a, b)
			}
			if _, err := x.QuerySA(ours); err != nil {
				t.Error(err)
			}
			if err := x.DeleteSA(ours); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestUpdateAllocated completes a larval SA as IKE does for an inbound SA:
// AllocSPI, then UpdateSA with the negotiated keys.
func TestUpdateAllocated(t *testing.T) {
	needRoot(t)
	r := Probe()
	ns := newNetNS(t)
	x := openXFRM(t, ns)
	id := ipsec.SAID{Dst: addrB, Protocol: transform.ESP}
	spi, err := x.AllocSPI(id, addrA, ipsec.Tunnel, 3, 0x3000, 0x3fff)
	if err != nil {
		t.Fatal(err)
	}
	id.SPI = spi
	tr, _ := transform.Lookup("esp-aes128-hmac-sha")
	c := &SAConfig{Src: addrA, Mode: ipsec.Tunnel, Transform: tr, CipherKey: randKey(16), AuthKey: randKey(20), ReplayWindow: 32, ReqID: 3, Inbound: true}
	err = x.UpdateSA(id, c)
	switch {
	case r.ESP.Present && slices.Contains(r.XFRMTransforms, tr):
		if err != nil {
			t.Fatal(err)
		}
		out, _ := inNS(ns, "ip", "xfrm", "state")
		if !strings.Contains(out, "enc cbc(aes)") || !strings.Contains(out, "auth-trunc hmac(sha1)") {
			t.Fatalf("updated SA lacks its algorithms:\n%s", out)
		}
	case !errors.Is(err, ErrNotSupported) || !errors.Is(err, unix.EPROTONOSUPPORT):
		t.Fatalf("kernel without ESP: update gave %v, want EPROTONOSUPPORT", err)
	}
	if err := x.DeleteSA(id); err != nil {
		t.Fatal(err)
	}
}

// TestPolicy installs and removes policies and checks them with iproute2.
func TestPolicy(t *testing.T) {
	needRoot(t)
	ns := newNetNS(t)
	x := openXFRM(t, ns)
	p := &Policy{
		Src: netip.MustParsePrefix("198.51.100.0/24"), Dst: netip.MustParsePrefix("203.0.113.0/24"),
		Dir: PolicyOut, Priority: 100, Mark: Mark{Value: 0x2a, Mask: 0xff}, IfID: 7,
		TunnelSrc: addrA, TunnelDst: addrB, Protocol: transform.ESP, Mode: ipsec.Tunnel, ReqID: 9,
	}
	if err := x.AddPolicy(p); err != nil {
		t.Fatal(err)
	}
	out, err := inNS(ns, "ip", "xfrm", "policy")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"src 198.51.100.0/24 dst 203.0.113.0/24", "dir out priority 100", "mark 0x2a/0xff",
		"if_id 0x7", "tmpl src 192.0.2.1 dst 192.0.2.2", "proto esp reqid 9 mode tunnel"} {
		if !strings.Contains(out, want) {
			t.Errorf("ip xfrm policy lacks %q:\n%s", want, out)
		}
	}
	if err := x.AddPolicy(p); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate policy: %v, want ErrExists", err)
	}
	if err := x.DeletePolicy(p); err != nil {
		t.Fatal(err)
	}
	if out, _ := inNS(ns, "ip", "xfrm", "policy"); strings.TrimSpace(out) != "" {
		t.Errorf("policy left behind:\n%s", out)
	}
	if err := x.DeletePolicy(p); !errors.Is(err, ErrNoSA) {
		t.Errorf("second delete: %v, want ErrNoSA", err)
	}
}

// TestPingThroughKernelESP joins two namespaces with a veth pair, installs
// SAs and policies with this package on both sides and pings between the
// inner addresses: the kernel frames ESP. It needs a kernel with ESP.
func TestPingThroughKernelESP(t *testing.T) {
	needRoot(t)
	r := Probe()
	if !r.ESP.Present {
		t.Skipf("probe: XFRM ESP %s", r.ESP)
	}
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	if !slices.Contains(r.XFRMTransforms, tr) {
		tr = r.XFRMTransforms[0]
	}
	a, b := newNetNS(t), newNetNS(t)
	run(t, "ip", "link", "add", "ismva", "netns", a, "type", "veth", "peer", "name", "ismvb", "netns", b)
	inner := map[string][2]string{a: {"198.51.100.1", "203.0.113.0/24"}, b: {"203.0.113.1", "198.51.100.0/24"}}
	for ns, c := range map[string][3]string{a: {"ismva", "192.0.2.1/24", "192.0.2.2"}, b: {"ismvb", "192.0.2.2/24", "192.0.2.1"}} {
		for _, cmd := range [][]string{
			{"ip", "link", "set", "lo", "up"},
			{"ip", "addr", "add", c[1], "dev", c[0]},
			{"ip", "link", "set", c[0], "up"},
			{"ip", "addr", "add", inner[ns][0] + "/32", "dev", "lo"},
			{"ip", "route", "add", inner[ns][1], "via", c[2], "src", inner[ns][0]},
		} {
			if out, err := inNS(ns, cmd...); err != nil {
				t.Fatalf("%s: %v: %s", cmd, err, out)
			}
		}
	}
	keyAB, keyBA := randKey(tr.CipherKeyLen()), randKey(tr.CipherKeyLen())
	authAB, authBA := randKey(tr.AuthKeyLen()), randKey(tr.AuthKeyLen())
	ab := ipsec.SAID{Dst: addrB, SPI: 0x1001, Protocol: transform.ESP}
	ba := ipsec.SAID{Dst: addrA, SPI: 0x1002, Protocol: transform.ESP}
	netA, netB := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24")
	for _, side := range []struct {
		ns              string
		out, in         ipsec.SAID
		outKey, outAuth ipsec.Key
		inKey, inAuth   ipsec.Key
		local, remote   netip.Prefix
	}{
		{a, ab, ba, keyAB, authAB, keyBA, authBA, netA, netB},
		{b, ba, ab, keyBA, authBA, keyAB, authAB, netB, netA},
	} {
		x := openXFRM(t, side.ns)
		if err := x.AddSA(side.out, &SAConfig{Src: side.in.Dst, Mode: ipsec.Tunnel, Transform: tr, CipherKey: side.outKey, AuthKey: side.outAuth, ReqID: 1}); err != nil {
			t.Fatal(err)
		}
		if err := x.AddSA(side.in, &SAConfig{Src: side.out.Dst, Mode: ipsec.Tunnel, Transform: tr, CipherKey: side.inKey, AuthKey: side.inAuth, ReqID: 2, ReplayWindow: 64, Inbound: true}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []*Policy{
			{Src: side.local, Dst: side.remote, Dir: PolicyOut, TunnelSrc: side.in.Dst, TunnelDst: side.out.Dst, Protocol: transform.ESP, Mode: ipsec.Tunnel, ReqID: 1},
			{Src: side.remote, Dst: side.local, Dir: PolicyIn, TunnelSrc: side.out.Dst, TunnelDst: side.in.Dst, Protocol: transform.ESP, Mode: ipsec.Tunnel, ReqID: 2},
		} {
			if err := x.AddPolicy(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out, err := inNS(a, "ping", "-c", "3", "-i", "0.2", "-W", "5", "-I", "198.51.100.1", "203.0.113.1"); err != nil {
		t.Fatalf("ping through ESP: %v\n%s", err, out)
	}
	u, err := openXFRM(t, a).QuerySA(ab)
	if err != nil {
		t.Fatal(err)
	}
	if u.Packets < 3 || u.Bytes == 0 || u.FirstUsed.IsZero() {
		t.Fatalf("outbound SA usage after 3 pings: %+v", u)
	}
	t.Logf("outbound SA: %+v", u)
	u, err = openXFRM(t, b).QuerySA(ab)
	if err != nil {
		t.Fatal(err)
	}
	if u.Packets < 3 || u.IntegrityFailures != 0 || u.FirstUsed.IsZero() {
		t.Fatalf("inbound SA usage after 3 pings: %+v", u)
	}
	t.Logf("inbound SA: %+v", u)
	t.Logf("%s: %d packets, %d bytes", tr, u.Packets, u.Bytes)
}
