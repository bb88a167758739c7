package trap

import (
	"net/netip"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/ismgw/ism/ism/config"
)

// notification is one event, queued for the receivers. It is immutable
// once queued, so every receiver's goroutine can read it.
type notification struct {
	kind   config.Trap
	uptime uint32 // sysUpTime when the event was posted, in hundredths of a second
	tunnel string
	// destination is the tunnel destination; for a failover it is the
	// destination the tunnel left, and to the one it moved to.
	destination, to netip.Addr
	reason          string
	detectedAt      time.Time
	// group, node and event are a cluster ownership change's: the
	// tunnel group, the node (this one) and what happened to it.
	group, node, event string
}

// varbinds returns the variable bindings of the SNMPv2-Trap-PDU: sysUpTime.0
// and snmpTrapOID.0 first (RFC 3416 §4.2.6), then the notification's
// OBJECTS in the order ISM-IPSEC-MIB lists them.
func (n *notification) varbinds() []gosnmp.SnmpPDU {
	v := []gosnmp.SnmpPDU{
		{Name: oidSysUpTime, Type: gosnmp.TimeTicks, Value: n.uptime},
		{Name: oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: notificationOID[n.kind]},
	}
	if n.kind == config.TrapClusterOwnership {
		return append(v, octets(OIDGroupName, displayString(n.group)), octets(OIDNode, displayString(n.node)),
			octets(OIDOwnershipEvent, displayString(n.event)), octets(OIDReason, displayString(n.reason)))
	}
	v = append(v, octets(OIDTunnelName, displayString(n.tunnel)))
	switch n.kind {
	case config.TrapTunnelUp:
		v = appendAddress(v, OIDDestinationType, OIDDestination, n.destination)
	case config.TrapTunnelDown, config.TrapIKEFailure:
		v = appendAddress(v, OIDDestinationType, OIDDestination, n.destination)
		v = append(v, octets(OIDReason, displayString(n.reason)))
	case config.TrapDPD:
		v = appendAddress(v, OIDDestinationType, OIDDestination, n.destination)
		v = append(v, octets(OIDDetectedAt, dateAndTime(n.detectedAt)))
	case config.TrapFailover:
		v = appendAddress(v, OIDFromDestinationType, OIDFromDestination, n.destination)
		v = appendAddress(v, OIDToDestinationType, OIDToDestination, n.to)
		v = append(v, octets(OIDReason, displayString(n.reason)))
	}
	return v
}

// instance names the scalar instance of an accessible-for-notify object.
func instance(object string) string { return object + ".0" }

func octets(object string, b []byte) gosnmp.SnmpPDU {
	return gosnmp.SnmpPDU{Name: instance(object), Type: gosnmp.OctetString, Value: b}
}

// appendAddress appends the InetAddressType and InetAddress pair of a.
func appendAddress(v []gosnmp.SnmpPDU, typeOID, addrOID string, a netip.Addr) []gosnmp.SnmpPDU {
	t, b := inetAddress(a)
	return append(v,
		gosnmp.SnmpPDU{Name: instance(typeOID), Type: gosnmp.Integer, Value: t},
		octets(addrOID, b))
}
