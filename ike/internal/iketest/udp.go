package iketest

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/ismgw/ism/ike"
)

// UDPTransport is the ISM side of IKE over real UDP sockets on ports 500
// and 4500 of one address: datagrams on 4500 carry the non-ESP marker
// (RFC 3948 §2.2), which it adds and removes; ESP-in-UDP datagrams and
// keepalives are counted, not delivered.
type UDPTransport struct {
	addr        netip.Addr
	c500, c4500 *net.UDPConn
	wg          sync.WaitGroup
	ESP         atomic.Uint64 // ESP-in-UDP datagrams received
	Keepalives  atomic.Uint64 // NAT-T keepalives received
}

var (
	_ ike.Transport       = (*UDPTransport)(nil)
	_ ike.KeepaliveSender = (*UDPTransport)(nil)
)

// ListenUDP opens the sockets. Call it in the namespace the address is in.
func ListenUDP(addr netip.Addr) (*UDPTransport, error) {
	u := &UDPTransport{addr: addr}
	var err error
	if u.c500, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 500))); err != nil {
		return nil, err
	}
	if u.c4500, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 4500))); err != nil {
		u.c500.Close()
		return nil, err
	}
	return u, nil
}

// Start delivers received IKE messages to r until Close.
func (u *UDPTransport) Start(r Receiver) {
	read := func(c *net.UDPConn, port uint16) {
		defer u.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			msg := buf[:n]
			if port == 4500 {
				switch {
				case n == 1 && msg[0] == 0xff:
					u.Keepalives.Add(1)
					continue
				case n >= 4 && msg[0] == 0 && msg[1] == 0 && msg[2] == 0 && msg[3] == 0:
					msg = msg[4:]
				default:
					u.ESP.Add(1)
					continue
				}
			}
			r.Receive(netip.AddrPortFrom(u.addr, port), netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), append([]byte(nil), msg...))
		}
	}
	u.wg.Add(2)
	go read(u.c500, 500)
	go read(u.c4500, 4500)
}

// Send sends an IKE message from local's port.
func (u *UDPTransport) Send(local, remote netip.AddrPort, msg []byte) error {
	if local.Port() == 4500 {
		_, err := u.c4500.WriteToUDPAddrPort(append([]byte{0, 0, 0, 0}, msg...), remote)
		return err
	}
	if local.Port() != 500 {
		return errors.New("iketest: no socket for that port")
	}
	_, err := u.c500.WriteToUDPAddrPort(msg, remote)
	return err
}

// SendKeepalive sends a NAT-T keepalive from port 4500.
func (u *UDPTransport) SendKeepalive(local, remote netip.AddrPort) error {
	_, err := u.c4500.WriteToUDPAddrPort([]byte{0xff}, remote)
	return err
}

// Close closes the sockets and waits for the readers.
func (u *UDPTransport) Close() {
	u.c500.Close()
	u.c4500.Close()
	u.wg.Wait()
}
