// Package v1 is IKEv1 as RFC 2409 defines it over ISAKMP (RFC 2408) in the
// IPsec DOI (RFC 2407), with NAT traversal (RFC 3947, RFC 3948): main and
// aggressive mode with pre-shared keys or RSA signatures, quick mode with
// PFS, informational exchanges, and the daemon that runs them for the
// signaled tunnels of the ISM line card.
//
// Files follow the exchanges: isakmp.go and messages.go are the wire
// format, keymat.go the key derivation (RFC 2409 §5 and Appendix B),
// mainmode_*.go, aggressive_*.go and quickmode_*.go one exchange and role
// each, informational.go notifications and deletes. dispatch.go routes
// datagrams to exchanges; daemon.go, ikesa.go and tunnel.go hold the
// state that outlives an exchange. dpd.go is dead peer detection (RFC
// 3706) driven by the traffic of the user SAs, as the seed runs it,
// deadpeer.go what a dead peer costs, and failover.go the switch of a tunnel between its destination and its
// backup when DPD declares a peer dead or phase 1 with it fails; each
// file opens with the rules it implements and the choices made.
//
// The daemon keeps no goroutine for an idle tunnel or IKE SA: an exchange
// in progress has one, discarded when it ends, and lifetimes, DPD checks
// and hold-downs run on timers of the configured clock (ike.Config.Clock).
package v1
