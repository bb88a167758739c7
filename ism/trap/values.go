package trap

import (
	"encoding/binary"
	"net/netip"
	"time"
	"unicode/utf8"
)

// InetAddressType values (RFC 4001 §3).
const (
	inetUnknown = 0
	inetIPv4    = 1
	inetIPv6    = 2
)

// inetAddress returns the InetAddressType and InetAddress of a (RFC 4001
// §3): ipv4 and 4 octets, ipv6 and 16 octets (an IPv4-mapped IPv6 address
// counts as IPv4; a zone is dropped), or unknown and no octets for the
// zero Addr. ISM-IPSEC-MIB uses this pair for IPv4 too, not the IpAddress
// type, as RFC 4001 §1 asks of new MIB modules.
func inetAddress(a netip.Addr) (int, []byte) {
	a = a.Unmap()
	switch {
	case a.Is4():
		b := a.As4()
		return inetIPv4, b[:]
	case a.Is6():
		b := a.As16()
		return inetIPv6, b[:]
	}
	return inetUnknown, []byte{}
}

// dateAndTime encodes t as an 11-octet DateAndTime of SNMPv2-TC (RFC 2579
// §2): year (2 octets), month, day, hour, minutes, seconds, deci-seconds,
// then '+', 0 hours and 0 minutes from UTC.
func dateAndTime(t time.Time) []byte {
	t = t.UTC()
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 11), uint16(t.Year()))
	return append(b, byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()),
		byte(t.Second()), byte(t.Nanosecond()/int(100*time.Millisecond)), '+', 0, 0)
}

// maxDisplayString is the longest DisplayString (RFC 2579 §2).
const maxDisplayString = 255

// displayString returns s cut to at most 255 octets, on a UTF-8 boundary.
func displayString(s string) []byte {
	if len(s) <= maxDisplayString {
		return []byte(s)
	}
	n := maxDisplayString
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return []byte(s[:n])
}
