package trap

import "github.com/ismgw/ism/ism/config"

// EnterpriseOID is the enterprise subtree of ISM-IPSEC-MIB. 32473 is the
// Private Enterprise Number reserved for documentation (RFC 5612): a
// placeholder that a real deployment replaces with its own PEN, here and in
// dist/ISM-IPSEC-MIB.txt.
const EnterpriseOID = "1.3.6.1.4.1.32473"

// OIDs of ISM-IPSEC-MIB (dist/ISM-IPSEC-MIB.txt); TestMIBMatchesCode checks
// them against the MIB as net-snmp parses it.
const (
	// MIBOID is ismIpsecMIB, the module identity.
	MIBOID = EnterpriseOID + ".1"

	// Notifications, under ismIpsecNotifications (MIBOID.0), so that
	// they translate to SNMPv1 traps (RFC 3584 §3).
	OIDTunnelUp       = MIBOID + ".0.1" // ismTunnelUp
	OIDTunnelDown     = MIBOID + ".0.2" // ismTunnelDown
	OIDIKEFailure     = MIBOID + ".0.3" // ismIkeFailure
	OIDDPDPeerDead    = MIBOID + ".0.4" // ismDpdPeerDead
	OIDTunnelFailover = MIBOID + ".0.5" // ismTunnelFailover
	OIDClusterOwner   = MIBOID + ".0.6" // ismClusterOwnership

	// Objects, accessible-for-notify, under ismIpsecObjects (MIBOID.1);
	// a varbind names the scalar instance, the object's OID plus ".0".
	OIDTunnelName          = MIBOID + ".1.1"  // ismTrapTunnelName, DisplayString
	OIDDestinationType     = MIBOID + ".1.2"  // ismTrapDestinationType, InetAddressType
	OIDDestination         = MIBOID + ".1.3"  // ismTrapDestination, InetAddress
	OIDReason              = MIBOID + ".1.4"  // ismTrapReason, DisplayString
	OIDDetectedAt          = MIBOID + ".1.5"  // ismTrapDetectedAt, DateAndTime
	OIDFromDestinationType = MIBOID + ".1.6"  // ismTrapFromDestinationType
	OIDFromDestination     = MIBOID + ".1.7"  // ismTrapFromDestination
	OIDToDestinationType   = MIBOID + ".1.8"  // ismTrapToDestinationType
	OIDToDestination       = MIBOID + ".1.9"  // ismTrapToDestination
	OIDGroupName           = MIBOID + ".1.10" // ismTrapGroupName, DisplayString
	OIDNode                = MIBOID + ".1.11" // ismTrapNode, DisplayString
	OIDOwnershipEvent      = MIBOID + ".1.12" // ismTrapOwnershipEvent, DisplayString
)

// The two varbinds that open every SNMPv2-Trap-PDU (RFC 3416 §4.2.6), from
// SNMPv2-MIB (RFC 3418).
const (
	oidSysUpTime   = "1.3.6.1.2.1.1.3.0"
	oidSnmpTrapOID = "1.3.6.1.6.3.1.1.4.1.0"
)

// notificationOID maps each trap of the configuration to its notification.
var notificationOID = map[config.Trap]string{
	config.TrapTunnelUp:         OIDTunnelUp,
	config.TrapTunnelDown:       OIDTunnelDown,
	config.TrapIKEFailure:       OIDIKEFailure,
	config.TrapDPD:              OIDDPDPeerDead,
	config.TrapFailover:         OIDTunnelFailover,
	config.TrapClusterOwnership: OIDClusterOwner,
}
