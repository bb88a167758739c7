// Package driver is the accelerator model every ISM crypto engine implements,
// in the style of DPDK cryptodev and rte_security: a driver states its
// capabilities per transform and per action (lookaside crypto, protocol
// offload, CPU crypto), holds keys in sessions, and takes work as bursts of
// crypto operations on queue pairs whose completions come back later, in
// bursts, possibly out of order.
//
// The package knows nothing of ESP or AH headers: under the lookaside and CPU
// actions an Op names the byte ranges to encrypt, authenticate and verify, and
// the caller (package offload) frames the packet. Only a driver that takes a
// protocol action parses ESP itself.
//
// Drivers register a probe with Register; Probe and Open find them by name.
package driver
