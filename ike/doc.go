// Package ike holds what every IKE version of ISM shares, after RFC 2409
// (IKEv1) and RFC 7296 (IKEv2): the seam to the ISM line card (Installer,
// Transport, Listener, UserSA), the daemon's configuration and status, the
// Diffie-Hellman groups (RFC 2409 §6, RFC 3526, RFC 5903), identities and
// the pre-shared key lookup, and the seed's PFS and lifetime rules.
//
// The IKEv1 daemon is in ike/v1.
package ike
