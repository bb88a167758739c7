// Package ike holds what every IKE version of ISM shares, after RFC 2409
// (IKEv1) and RFC 7296 (IKEv2): the seam to the ISM line card (Installer,
// Transport, Listener, UserSA), the daemon's configuration and status, the
// Diffie-Hellman groups (RFC 2409 §6, RFC 3526, RFC 5903), identities and
// the pre-shared key lookup, and the seed's PFS and lifetime rules.
//
// Dead peer detection (RFC 3706) and tunnel failover are configured here
// (DPD, Tunnel.BackupDestination, the hold-down; dpd.go) and reported
// through the Listener (PeerDead, Failover) and Status (TunnelDPD,
// TunnelFailover); the IKEv1 daemon runs them.
//
// The IKEv1 daemon is in ike/v1.
package ike
