// Package v2 is IKEv2 as RFC 7296 defines it: IKE_SA_INIT and IKE_AUTH
// with pre-shared keys or certificates (§2.15; RSA, ECDSA of RFC 4754 and
// the Digital Signature of RFC 7427), IKE fragmentation (RFC 7383),
// CREATE_CHILD_SA for further child SAs and their rekeys (§1.3, §2.8),
// INFORMATIONAL deletes and liveness checks
// (§1.4, §2.4), NAT traversal (§2.23, RFC 3948), with AES-GCM in the SK
// payload (RFC 5282) and the ECP (RFC 5903) and Curve25519 (RFC 8031)
// groups, post-quantum hybrid key exchanges (RFC 9370 additional key
// exchanges, ML-KEM-768 among them, in IKE_INTERMEDIATE of RFC 9242 and
// IKE_FOLLOWUP_KE), and the daemon that runs them for the signaled
// tunnels of the ISM line card behind the same seam as ike/v1
// (ike.Installer, ike.Transport, ike.Listener).
//
// Files follow crypto/tls's shape: messages.go and payloads.go are the wire
// format (§3), notify.go the Notify types, keys.go the key schedule
// (§2.13, §2.14, §2.17), encrypted.go the SK payload (§3.14), proposals.go
// the SA payloads built from and matched against the configuration,
// extensions.go what IKE_SA_INIT announces besides them.
// ike_sa_init_*.go, ike_auth_*.go, create_child_sa*.go and informational.go
// are one exchange and role each, each step named after the RFC's;
// authenticate.go is their AUTH step, certs.go the CERT and CERTREQ
// payloads, signature.go and sigalg.go the signatures; addke.go negotiates the
// additional key exchanges, intermediate.go runs them in IKE_INTERMEDIATE
// with IntAuth, followup.go in IKE_FOLLOWUP_KE after a rekey's
// CREATE_CHILD_SA. daemon.go,
// dispatch.go, ikesa.go and child.go hold the state that outlives an exchange;
// window.go is the message ID window (§2.3) with retransmission and the
// response cache (§2.1), liveness.go dead peer detection (§2.4) on the seed's
// timers, natt.go NAT detection (§2.23), fragment.go fragmentation and
// reassembly.
//
// The daemon runs no goroutine of its own: a received message is handled on
// the goroutine that delivers it, a timer on the clock's. Out of scope for
// now, with the place each goes: EAP, certificate revocation (CRL, OCSP)
// and hash-and-URL certificates.
package v2
