// Package trap sends the ISM's SNMP notifications: tunnel up and down, IKE
// negotiation failures, DPD declaring a peer dead, and tunnel failover, as
// SNMPv2-Trap-PDUs (RFC 3416 §4.2.6) to every receiver of config.SNMP, over
// SNMPv2c or over SNMPv3 with the User-based Security Model (RFC 3414).
//
// The notifications and their objects are defined in dist/ISM-IPSEC-MIB.txt,
// under the placeholder enterprise number 32473 (RFC 5612, documentation
// use); a real deployment registers its own and changes EnterpriseOID,
// enterpriseNumber (the engine ID prefix) and the MIB together.
//
// A Sender never blocks its caller: each receiver has a bounded queue and a
// goroutine that sends from it. A full queue drops the trap and counts it;
// send errors are counted and logged at most once a minute per receiver,
// never returned. Communities and passwords never appear in logs, errors or
// String output, and their copies are zeroed by Close.
package trap
