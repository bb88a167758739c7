package transport

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// TestSenderAllocatesNothing: once its batches have grown, a Sender queues
// and sends ESP in UDP with no allocation (its message buffers are kept
// from burst to burst), and what it sends arrives.
func TestSenderAllocatesNothing(t *testing.T) {
	ns := ownNamespace(t)
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	e := NewEndpoints(&ikeRecorder{}, nil)
	defer e.Close()
	local := netip.MustParseAddr("127.0.0.1")
	s, err := e.Get(&vr.VR{Name: "v", NS: ns}, local).Socket(UDP, 0)
	if err != nil {
		t.Fatal(err)
	}
	fb := fallback.New(1)
	defer fb.Close()
	eng, err := offload.New(offload.Config{Fallback: fb})
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	sa, err := eng.AddSA(offload.SAConfig{SPI: 0x1001, Transform: tr, Direction: ipsec.Outbound, Mode: ipsec.Tunnel,
		Src: local, Dst: local, UDPEncap: true, DstPort: uint16(peer.LocalAddr().(*net.UDPAddr).Port),
		CipherKey: make([]byte, tr.CipherKeyLen()), AuthKey: make([]byte, tr.AuthKeyLen())})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.DeleteSA(sa.ID())
	pkts := make([]*offload.Packet, 8)
	for i := range pkts {
		pkts[i] = offload.NewPacket()
		pkts[i].Reset(100)
		pkts[i].SA = sa
	}
	var tx Sender
	refused := 0
	send := func() {
		for _, pk := range pkts {
			tx.Add(s, pk)
		}
		tx.Flush(func(*offload.Packet) { refused++ })
	}
	send() // the batch grows to its size
	// The race detector changes what allocates (x/net's sendmmsg scratch
	// comes from a sync.Pool, which it empties at random): the count is
	// checked without it (go test without -race), the sending with it too.
	if a := testing.AllocsPerRun(20, send); a != 0 && !raceEnabled {
		t.Errorf("a burst of %d packets allocates %.1f times, want 0", len(pkts), a)
	}
	if refused != 0 {
		t.Errorf("%d packets refused", refused)
	}
	buf := make([]byte, 2048)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := peer.Read(buf); err != nil || n != 100 {
		t.Errorf("the peer read %d bytes (%v), want a 100-byte datagram", n, err)
	}
}
