package transport

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/ismgw/ism/offload"
)

// ikeRecorder is a Handler that keeps a copy of every IKE message.
type ikeRecorder struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (h *ikeRecorder) IKE(_, _ netip.AddrPort, msg []byte) {
	h.mu.Lock()
	h.msgs = append(h.msgs, bytes.Clone(msg))
	h.mu.Unlock()
}
func (h *ikeRecorder) Serve(Reader)            {}
func (h *ikeRecorder) Drop(offload.DropReason) {}

// TestReadAfterControlBatch: a read whose whole batch was IKE (taken off
// to the Handler) reads again, and the next batch's datagrams land in the
// packets handed out for them: IKE messages reach the Handler whole and
// ESP reaches its packet, byte for byte. A reader that kept the first
// batch's buffer order after moving the packets around handed the IKE
// daemon the previous message's bytes cut to the new one's length.
func TestReadAfterControlBatch(t *testing.T) {
	ns := ownNamespace(t)
	s, err := openSocket(ns, UDP, netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	local := netip.MustParseAddrPort(s.conn.LocalAddr().String())
	s.local = local
	h := &ikeRecorder{}
	e := NewEndpoints(h, nil)
	r := e.newSockReader(s, 2)

	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	ike := func(fill byte, n int) []byte { // the non-ESP marker, then the message
		return append(make([]byte, 4), bytes.Repeat([]byte{fill}, n)...)
	}
	esp := append([]byte{0, 0, 0x10, 0x01}, bytes.Repeat([]byte{0xe5}, 60)...) // SPI 0x1001
	sent := [][]byte{ike(0xa1, 300), ike(0xa2, 279), ike(0xa3, 229), esp}
	for _, d := range sent {
		if _, err := peer.WriteToUDPAddrPort(d, local); err != nil {
			t.Fatal(err)
		}
	}
	pkts := []*offload.Packet{offload.NewPacket(), offload.NewPacket()}
	n, err := r.Read(pkts)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || !bytes.Equal(pkts[0].Buf.Bytes(), esp) {
		t.Errorf("read %d packets, the first %x; want the ESP datagram", n, pkts[0].Buf.Bytes())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.msgs) != 3 {
		t.Fatalf("the Handler got %d IKE messages, want 3", len(h.msgs))
	}
	for i, m := range h.msgs {
		if want := sent[i][4:]; !bytes.Equal(m, want) {
			t.Errorf("IKE message %d: %d bytes starting %x, want %d bytes of %x", i, len(m), m[:1], len(want), want[0])
		}
	}
}
