// Package ipsec is the vocabulary every layer of ISM shares about IPsec
// security associations (RFC 4301): an SA's identity, its direction and
// mode, its lifetime, the dead peer detection timers of its tunnel, and the
// type that holds its keys without ever printing them. It is a leaf: it
// imports nothing of ISM but the transform table.
//
// The configuration, IKE, the offload engine, the drivers and the line card
// all speak these types, so that a value crosses a package boundary without
// a translation table.
package ipsec
