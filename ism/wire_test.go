package ism

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// The wire judged by others: a ping goes through a manual tunnel while
// tcpdump captures b's eth0 (raw ESP from a through its AF_XDP ring, the
// rest through sockets), then a program written outside this project
// decrypts the capture with the configured keys and checks every ICV:
// tshark for ESP in tunnel mode (raw and in UDP), scapy
// (testdata/ipsec_judge.py) for AH and for transport mode. Each judge then
// gets the capture again with one key byte changed and must reject every
// packet, so that a judge that checks nothing cannot pass.

// wirePings is how many echo requests each wire test sends.
const wirePings = 3

// needTool fails the test when a judge is missing: CI installs them
// (Makefile DEB_PACKAGES), so a missing one is an error, not a skip.
func needTool(t *testing.T, path, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(path)
	if err != nil {
		t.Fatalf("%s is required (apt-get install %s): %v", path, pkg, err)
	}
	return p
}

// capture is a tcpdump writing one interface's IPsec packets to a pcap.
type capture struct {
	cmd  *exec.Cmd
	path string
	log  *watchWriter
}

// startCapture starts tcpdump on ifc in namespace ns and returns once it is
// capturing. The filter keeps ESP, AH and ESP in UDP.
func startCapture(t *testing.T, l *netlab.Lab, ns, ifc string) *capture {
	t.Helper()
	needTool(t, "tcpdump", "tcpdump")
	c := &capture{path: filepath.Join(t.TempDir(), "wire.pcap"), log: newWatchWriter("listening on")}
	// -Z root: a tcpdump built to drop privileges (--with-user) would
	// otherwise open the file as that user, in a directory only root may
	// write.
	c.cmd = l.Command(ns, "tcpdump", "-i", ifc, "-n", "-U", "--immediate-mode", "-Z", "root",
		"-w", c.path, "esp or ah or udp port 4500")
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	l.Start(c.cmd)
	select {
	case <-c.log.found:
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpdump did not start capturing: %s", c.log.String())
	}
	return c
}

// stop waits until the file holds want packets (tcpdump -U writes each
// as it comes), or 5 s, then stops tcpdump and returns the file's path.
func (c *capture) stop(t *testing.T, want int) string {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); pcapCount(c.path) < want && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("tcpdump: %v: %s", err, c.log.String())
	}
	return c.path
}

// pcapCount returns the number of whole records in a pcap file (the
// libpcap format: a 24-byte file header, then records with a 16-byte header
// whose third word is the captured length), in the writer's byte order.
func pcapCount(path string) int {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 24 {
		return 0
	}
	var order binary.ByteOrder = binary.LittleEndian
	if binary.BigEndian.Uint32(b) == 0xa1b2c3d4 {
		order = binary.BigEndian
	}
	n := 0
	for off := 24; off+16 <= len(b); n++ {
		off += 16 + int(order.Uint32(b[off+8:]))
		if off > len(b) {
			break
		}
	}
	return n
}

// watchWriter collects a process's output and closes found when a string
// appears in it. Safe for concurrent use.
type watchWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	found chan struct{}
	done  bool
}

func newWatchWriter(want string) *watchWriter {
	return &watchWriter{want: want, found: make(chan struct{})}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.want) {
		w.done = true
		close(w.found)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// wireSA is one direction of a lab's manual tunnel as the judges need it.
type wireSA struct {
	src, dst   string
	proto      string // "esp" or "ah"
	spi        uint32
	ck, ak     string // hex keys, "" when the transform has none
	tr         transform.Transform
	tunnelMode bool
}

// parseSALine reads a lab's key line: "esp spi 0x1001 cipher-key HEX
// auth-key HEX" (either key may be missing).
func parseSALine(t *testing.T, line string) (proto string, spi uint32, ck, ak string) {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 3 || f[1] != "spi" {
		t.Fatalf("SA line %q", line)
	}
	n, err := strconv.ParseUint(f[2], 0, 32)
	if err != nil {
		t.Fatalf("SA line %q: %v", line, err)
	}
	for i := 3; i+1 < len(f); i += 2 {
		switch f[i] {
		case "cipher-key":
			ck = f[i+1]
		case "auth-key":
			ak = f[i+1]
		}
	}
	return f[0], uint32(n), ck, ak
}

// wireSAs returns the lab's SAs: a→b, then b→a.
func (x *lab) wireSAs(t *testing.T) [2]wireSA {
	t.Helper()
	tr, ok := transform.Lookup(x.c.transform)
	if !ok {
		t.Fatalf("no transform %s", x.c.transform)
	}
	var out [2]wireSA
	ends := x.outer()
	for i, e := range []struct{ src, dst, line string }{{ends[0], ends[1], x.ka}, {ends[1], ends[0], x.kb}} {
		proto, spi, ck, ak := parseSALine(t, e.line)
		out[i] = wireSA{src: e.src, dst: e.dst, proto: proto, spi: spi, ck: ck, ak: ak, tr: tr,
			tunnelMode: x.c.mode == ipsec.Tunnel}
	}
	return out
}

// spoiled returns the SA with the first byte of the key that protects
// integrity inverted: the auth key, or the AEAD cipher key.
func (s wireSA) spoiled() wireSA {
	flip := func(h string) string {
		b, _ := hex.DecodeString(h)
		b[0] ^= 0xff
		return hex.EncodeToString(b)
	}
	if s.ak != "" {
		s.ak = flip(s.ak)
	} else {
		s.ck = flip(s.ck)
	}
	return s
}

// innerPacket is a decrypted packet as a judge saw it.
type innerPacket struct {
	spi       uint32
	seq       uint32
	udp       bool
	icvGood   bool // the judge verified the ICV
	icvBad    bool // the judge found the ICV wrong (tshark only)
	src, dst  string
	icmpType  int // -1 when not ICMP
	icmpSeq   int
	decrypted bool
}

// checkPings checks that the judged packets are exactly the ping's: for
// each direction wirePings packets, all with a good ICV, sequence numbers
// 1 to wirePings (a new SA's first packet has sequence number 1, RFC 4303
// §3.3.3, RFC 4302 §3.3.2), carrying the echo requests (a→b) and replies (b→a)
// between the inner addresses, over UDP when udp.
func checkPings(t *testing.T, pkts []innerPacket, sas [2]wireSA, from, to string, udp bool) {
	t.Helper()
	if len(pkts) != 2*wirePings {
		t.Errorf("judged %d IPsec packets, want %d", len(pkts), 2*wirePings)
	}
	var seqs [2][]uint32
	var echo [2][]int
	for _, p := range pkts {
		dir := slices.IndexFunc(sas[:], func(s wireSA) bool { return s.spi == p.spi })
		switch {
		case dir < 0:
			t.Errorf("packet with unknown SPI 0x%08x", p.spi)
			continue
		case !p.icvGood || !p.decrypted:
			t.Errorf("SPI 0x%08x seq %d: ICV good %v, decrypted %v", p.spi, p.seq, p.icvGood, p.decrypted)
			continue
		case p.udp != udp:
			t.Errorf("SPI 0x%08x seq %d: in UDP %v, want %v", p.spi, p.seq, p.udp, udp)
		}
		src, dst, typ := from, to, 8
		if dir == 1 {
			src, dst, typ = to, from, 0
		}
		if p.src != src || p.dst != dst || p.icmpType != typ {
			t.Errorf("SPI 0x%08x seq %d carries %s → %s ICMP type %d, want %s → %s type %d",
				p.spi, p.seq, p.src, p.dst, p.icmpType, src, dst, typ)
			continue
		}
		seqs[dir] = append(seqs[dir], p.seq)
		echo[dir] = append(echo[dir], p.icmpSeq)
	}
	for dir := range 2 {
		var want []uint32
		var wantEcho []int
		for i := 1; i <= wirePings; i++ {
			want, wantEcho = append(want, uint32(i)), append(wantEcho, i)
		}
		if !slices.Equal(seqs[dir], want) || !slices.Equal(echo[dir], wantEcho) {
			t.Errorf("SPI 0x%08x: ESP/AH sequence numbers %v and ICMP sequence numbers %v, want %v and %v",
				sas[dir].spi, seqs[dir], echo[dir], want, wantEcho)
		}
	}
}

// pingCaptured runs wirePings pings through the lab's tunnel while
// capturing b's eth0 and returns the capture. b must run raw ESP on raw
// sockets (e2eCase.raw), as its capture would see nothing of an AF_XDP
// ring's; a runs whichever it chose.
func pingCaptured(t *testing.T, x *lab) string {
	t.Helper()
	if x.c.raw[1] != "socket" {
		t.Fatal("pingCaptured: b's raw ESP must be on raw sockets")
	}
	c := startCapture(t, x.lab, x.b, "eth0")
	if err := x.ping(t, wirePings); err != nil {
		t.Fatal(err)
	}
	return c.stop(t, 2*wirePings)
}

// judgeContext bounds a judge's run.
func judgeContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// tsharkAlgorithms returns tshark 4.0's names for a transform's cipher
// and integrity algorithm in its ESP SA table (uat:esp_sa), as listed in
// its ESP preferences ("Encryption algorithm", "Authentication algorithm").
func tsharkAlgorithms(t *testing.T, tr transform.Transform) (enc, auth string) {
	t.Helper()
	switch tr.Cipher {
	case transform.CipherNull:
		enc = "NULL"
	case transform.CipherDESCBC:
		enc = "DES-CBC [RFC2405]"
	case transform.Cipher3DESCBC:
		enc = "TripleDES-CBC [RFC2451]"
	case transform.CipherAESCBC:
		enc = "AES-CBC [RFC3602]"
	case transform.CipherAESGCM:
		enc = fmt.Sprintf("AES-GCM with %d octet ICV [RFC4106]", tr.ICVLen())
	default:
		t.Fatalf("tshark: no name for the cipher of %s", tr)
	}
	switch tr.Integrity {
	case transform.IntegrityNone:
		auth = "NULL"
	case transform.HMACMD596:
		auth = "HMAC-MD5-96 [RFC2403]"
	case transform.HMACSHA196:
		auth = "HMAC-SHA-1-96 [RFC2404]"
	case transform.HMACSHA256128:
		auth = "HMAC-SHA-256-128 [RFC4868]"
	default:
		t.Fatalf("tshark: no name for the integrity algorithm of %s", tr)
	}
	return enc, auth
}

// tsharkKey is a key as the ESP SA table takes it: 0x and hex, or empty.
func tsharkKey(h string) string {
	if h == "" {
		return ""
	}
	return "0x" + h
}

// tsharkESP decrypts the capture's ESP packets with tshark and the given
// SAs, with the ICV check on, and returns what it found in each.
func tsharkESP(t *testing.T, pcap string, sas [2]wireSA) []innerPacket {
	t.Helper()
	args := []string{"-n", "-r", pcap,
		"-o", "esp.enable_encryption_decode:TRUE",
		"-o", "esp.enable_authentication_check:TRUE"}
	for _, s := range sas {
		enc, auth := tsharkAlgorithms(t, s.tr)
		// Eight fields, all quoted: protocol, source, destination, SPI,
		// encryption algorithm and key, authentication algorithm and key.
		family := "IPv4"
		if strings.Contains(s.src, ":") {
			family = "IPv6"
		}
		args = append(args, "-o", fmt.Sprintf(`uat:esp_sa:"%s","%s","%s","0x%08x","%s","%s","%s","%s"`,
			family, s.src, s.dst, s.spi, enc, tsharkKey(s.ck), auth, tsharkKey(s.ak)))
	}
	fields := []string{"esp.spi", "esp.sequence", "esp.icv_good", "esp.icv_bad", "udp.dstport",
		"ip.src", "ip.dst", "icmp.type", "icmp.seq"}
	args = append(args, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,")
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.CommandContext(judgeContext(t), needTool(t, "tshark", "tshark"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.Bytes())
	}
	var pkts []innerPacket
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		v := strings.Split(line, "\t")
		if len(v) != len(fields) {
			t.Fatalf("tshark line %q: %d fields, want %d", line, len(v), len(fields))
		}
		p := innerPacket{icmpType: -1, udp: v[4] != ""}
		// The outer ESP header comes first; with a wrong key tshark may
		// dissect the garbage it decrypted as more headers (another
		// ESP, say), which only add later occurrences.
		spi, err1 := strconv.ParseUint(first(v[0]), 0, 32)
		seq, err2 := strconv.ParseUint(first(v[1]), 0, 32)
		if err1 != nil || err2 != nil {
			t.Fatalf("tshark line %q: not ESP", line)
		}
		p.spi, p.seq = uint32(spi), uint32(seq)
		p.icvGood, p.icvBad = first(v[2]) == "1" && first(v[3]) != "1", first(v[3]) == "1"
		// After decryption the frame has two IP headers: outer, inner
		// (an IPv6 outer header is not among ip.src and ip.dst).
		srcs, dsts := strings.Split(v[5], ","), strings.Split(v[6], ",")
		if len(srcs) == len(dsts) && len(srcs) >= 1 && v[7] != "" {
			p.decrypted = true
			p.src, p.dst = srcs[len(srcs)-1], dsts[len(dsts)-1]
			p.icmpType, _ = strconv.Atoi(v[7])
			p.icmpSeq, _ = strconv.Atoi(strings.Split(v[8], ",")[0])
		}
		pkts = append(pkts, p)
	}
	return pkts
}

// tsharkTransforms are the ESP transforms tshark judges, raw and in UDP.
var tsharkTransforms = []string{
	"esp-3des-hmac-sha", "esp-3des-hmac-md5", "esp-des-hmac-md5", "esp-des-hmac-sha",
	"esp-null-hmac-sha", "esp-null-hmac-md5", "esp-aes128-hmac-sha", "esp-aes128-gcm16",
}

// TestWireTshark: tshark decrypts a ping through an ESP tunnel-mode
// tunnel, raw and in UDP, with the configured keys: every ICV is good and
// the inner echo requests and replies are there; with a wrong key every
// ICV is bad.
func TestWireTshark(t *testing.T) {
	t.Parallel()
	for _, tr := range tsharkTransforms {
		for _, udp := range []bool{false, true} {
			// a sends and takes raw ESP through its AF_XDP ring.
			c := e2eCase{transform: tr, mode: ipsec.Tunnel, udp: udp, raw: [2]string{"ring", "socket"}}
			t.Run(c.String(), func(t *testing.T) {
				t.Parallel()
				x := newLab(t, manualSpec(t, c))
				pcap := pingCaptured(t, x)
				if !udp {
					x.wantRing(t, wirePings, false) // the first pings resolve b
				}
				sas := x.wireSAs(t)
				_, from := x.from()
				_, to := x.to()
				checkPings(t, tsharkESP(t, pcap, sas), sas, from, to, udp)
				bad := tsharkESP(t, pcap, [2]wireSA{sas[0].spoiled(), sas[1].spoiled()})
				if len(bad) != 2*wirePings {
					t.Fatalf("wrong key: tshark saw %d ESP packets, want %d", len(bad), 2*wirePings)
				}
				// With a wrong AEAD key tshark sometimes stops at the
				// garbage trailer and reports neither verdict: no packet
				// may pass, and the judge must have refused some.
				refused := 0
				for _, p := range bad {
					if p.icvGood {
						t.Errorf("wrong key: tshark found the ICV of SPI 0x%08x seq %d good", p.spi, p.seq)
					}
					if p.icvBad {
						refused++
					}
				}
				if refused == 0 {
					t.Error("wrong key: tshark refused no ICV; is it checking?")
				}
			})
		}
	}
}

// scapyAlgorithms returns scapy 2.5's names (scapy.layers.ipsec
// CRYPT_ALGOS, AUTH_ALGOS) for a transform's algorithms; "" for none.
func scapyAlgorithms(t *testing.T, tr transform.Transform) (crypt, auth string) {
	t.Helper()
	switch tr.Cipher {
	case transform.CipherNone:
	case transform.CipherNull:
		crypt = "NULL"
	case transform.CipherDESCBC:
		crypt = "DES"
	case transform.Cipher3DESCBC:
		crypt = "3DES"
	case transform.CipherAESCBC:
		crypt = "AES-CBC"
	case transform.CipherAESGCM:
		if tr.ICVLen() != 16 {
			t.Fatalf("scapy: AES-GCM with a %d-byte ICV", tr.ICVLen())
		}
		crypt = "AES-GCM"
	default:
		t.Fatalf("scapy: no name for the cipher of %s", tr)
	}
	switch tr.Integrity {
	case transform.IntegrityNone:
	case transform.HMACMD596:
		auth = "HMAC-MD5-96"
	case transform.HMACSHA196:
		auth = "HMAC-SHA1-96"
	case transform.HMACSHA256128:
		auth = "SHA2-256-128"
	default:
		t.Fatalf("scapy: no name for the integrity algorithm of %s", tr)
	}
	return crypt, auth
}

// scapySA is one SA of a testdata/ipsec_judge.py request.
type scapySA struct {
	Proto     string  `json:"proto"`
	SPI       uint32  `json:"spi"`
	CryptAlgo *string `json:"crypt_algo"`
	CryptKey  string  `json:"crypt_key,omitempty"`
	AuthAlgo  *string `json:"auth_algo"`
	AuthKey   string  `json:"auth_key,omitempty"`
	Tunnel    bool    `json:"tunnel"`
}

// scapyResult is one packet of an ipsec_judge.py answer.
type scapyResult struct {
	Frame int     `json:"frame"`
	Proto *string `json:"proto"`
	SPI   uint32  `json:"spi"`
	Seq   uint32  `json:"seq"`
	UDP   bool    `json:"udp"`
	OK    bool    `json:"ok"`
	Error string  `json:"error"`
	Inner *struct {
		Src      string `json:"src"`
		Dst      string `json:"dst"`
		ICMPType *int   `json:"icmp_type"`
		ICMPSeq  *int   `json:"icmp_seq"`
	} `json:"inner"`
}

func (s wireSA) scapy(t *testing.T) scapySA {
	crypt, auth := scapyAlgorithms(t, s.tr)
	opt := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	return scapySA{Proto: strings.ToUpper(s.proto), SPI: s.spi, CryptAlgo: opt(crypt), CryptKey: s.ck,
		AuthAlgo: opt(auth), AuthKey: s.ak, Tunnel: s.tunnelMode}
}

// scapyJudge runs testdata/ipsec_judge.py on the capture, once per set of
// SAs, and returns its results per run.
func scapyJudge(t *testing.T, pcap string, runs ...[2]wireSA) [][]scapyResult {
	t.Helper()
	py := needTool(t, "/usr/bin/python3", "python3-scapy python3-cryptography")
	req := struct {
		Pcap string      `json:"pcap"`
		Runs [][]scapySA `json:"runs"`
	}{Pcap: pcap}
	for _, r := range runs {
		req.Runs = append(req.Runs, []scapySA{r[0].scapy(t), r[1].scapy(t)})
	}
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(judgeContext(t), py, filepath.Join("testdata", "ipsec_judge.py"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scapy judge (python3-scapy and python3-cryptography needed): %v\n%s", err, stderr.Bytes())
	}
	var res struct {
		Scapy string          `json:"scapy"`
		Runs  [][]scapyResult `json:"runs"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("scapy judge output: %v\n%s", err, out)
	}
	if len(res.Runs) != len(runs) {
		t.Fatalf("scapy judge answered %d runs of %d", len(res.Runs), len(runs))
	}
	return res.Runs
}

// scapyPackets turns one run's results into judged packets.
func scapyPackets(t *testing.T, rs []scapyResult) []innerPacket {
	t.Helper()
	var pkts []innerPacket
	for _, r := range rs {
		if r.Proto == nil {
			t.Errorf("frame %d is neither ESP nor AH: %s", r.Frame, r.Error)
			continue
		}
		p := innerPacket{spi: r.SPI, seq: r.Seq, udp: r.UDP, icvGood: r.OK, decrypted: r.OK, icmpType: -1}
		if r.Inner != nil {
			p.src, p.dst = r.Inner.Src, r.Inner.Dst
			if r.Inner.ICMPType != nil && r.Inner.ICMPSeq != nil {
				p.icmpType, p.icmpSeq = *r.Inner.ICMPType, *r.Inner.ICMPSeq
			}
		}
		if !r.OK {
			t.Logf("scapy: frame %d SPI 0x%08x: %s", r.Frame, r.SPI, r.Error)
		}
		pkts = append(pkts, p)
	}
	return pkts
}

// TestWireScapy: scapy verifies and decrypts a ping through an AH tunnel
// (tunnel and transport mode) and through ESP tunnels in transport mode
// (raw and in UDP): every ICV verifies and the inner echo requests and
// replies are there; with a wrong key every packet is refused.
func TestWireScapy(t *testing.T) {
	t.Parallel()
	var cases []e2eCase
	for _, tr := range []string{"ah-hmac-md5", "ah-hmac-sha"} {
		for _, mode := range []ipsec.Mode{ipsec.Tunnel, ipsec.Transport} {
			cases = append(cases, e2eCase{transform: tr, mode: mode, raw: [2]string{"", "socket"}})
		}
	}
	for _, tr := range []string{"esp-3des-hmac-sha", "esp-des-hmac-md5", "esp-null-hmac-sha", "esp-aes128-hmac-sha", "esp-aes128-gcm16"} {
		for _, udp := range []bool{false, true} {
			cases = append(cases, e2eCase{transform: tr, mode: ipsec.Transport, udp: udp, raw: [2]string{"", "socket"}})
		}
	}
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			x := newLab(t, manualSpec(t, c))
			pcap := pingCaptured(t, x)
			sas := x.wireSAs(t)
			runs := scapyJudge(t, pcap, sas, [2]wireSA{sas[0].spoiled(), sas[1].spoiled()})
			_, from := x.from()
			_, to := x.to()
			checkPings(t, scapyPackets(t, runs[0]), sas, from, to, c.udp)
			if len(runs[1]) != 2*wirePings {
				t.Fatalf("wrong key: scapy saw %d packets, want %d", len(runs[1]), 2*wirePings)
			}
			for _, r := range runs[1] {
				if r.OK {
					t.Errorf("wrong key: scapy accepted frame %d (SPI 0x%08x seq %d)", r.Frame, r.SPI, r.Seq)
				}
			}
		})
	}
}

// first returns the first of the values tshark aggregated with commas.
func first(field string) string {
	f, _, _ := strings.Cut(field, ",")
	return f
}
