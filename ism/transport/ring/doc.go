// Package ring is a raw ESP and AH transport (RFC 4303, RFC 4302 carried
// directly over IP, protocols 50 and 51) on an Ethernet interface with
// AF_XDP rings, standalone for now: a batch of packets is written into the
// ring's frames and sent with one system call, and received packets are
// read from the ring with none while they keep coming, where a raw socket
// with IP_HDRINCL costs the kernel's whole IP output and input path per
// packet.
//
// An XDP program on the interface takes only unfragmented ESP and AH for
// the local addresses; fragments (which the kernel reassembles and hands to
// the raw socket path), ICMP errors, IKE, ESP in UDP, ARP and neighbour
// discovery stay with the kernel. Next hops are resolved through the
// kernel's routes and neighbour table (rtnetlink); what the ring cannot
// send — no usable neighbour entry yet, over the MTU, routed elsewhere —
// goes through raw sockets (Sockets), the fallback, which is also how ISM
// sends today. Probe says whether the ring works on an interface and, if
// not, why (a *ProbeError). The sockets run in copy mode, which every
// driver supports, veth included.
package ring
