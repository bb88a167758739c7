package v1

import (
	"crypto"
	"crypto/md5"
	"crypto/subtle"
	"encoding/binary"
	"net/netip"
)

// NAT traversal in IKE (RFC 3947).

// natTVendorID is the vendor ID that announces RFC 3947 support: the MD5
// hash of "RFC 3947" (RFC 3947 §3.1).
var natTVendorID = func() []byte { s := md5.Sum([]byte("RFC 3947")); return s[:] }()

// Ports.
const (
	portIKE  = 500
	portNATT = 4500 // RFC 3947 §4
)

// natDHash is the NAT-D payload data for an address and port:
// HASH = HASH(CKY-I | CKY-R | IP | Port), with the negotiated hash
// (RFC 3947 §3.2).
func natDHash(h crypto.Hash, ckyI, ckyR Cookie, ap netip.AddrPort) []byte {
	m := h.New()
	m.Write(ckyI[:])
	m.Write(ckyR[:])
	m.Write(ap.Addr().Unmap().AsSlice())
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], ap.Port())
	m.Write(p[:])
	return m.Sum(nil)
}

// natDetect interprets received NAT-D payloads (RFC 3947 §3.2): the first
// is the hash of the receiver's address and port as the sender saw them;
// the others are the sender's own. local and remote are the endpoints of
// the datagram that carried them, as received.
func natDetect(h crypto.Hash, ckyI, ckyR Cookie, natd [][]byte, local, remote netip.AddrPort) (localNAT, remoteNAT bool) {
	if len(natd) < 2 {
		return false, false
	}
	localNAT = subtle.ConstantTimeCompare(natd[0], natDHash(h, ckyI, ckyR, local)) != 1
	remoteNAT = true
	want := natDHash(h, ckyI, ckyR, remote)
	for _, d := range natd[1:] {
		if subtle.ConstantTimeCompare(d, want) == 1 {
			remoteNAT = false
		}
	}
	return localNAT, remoteNAT
}
