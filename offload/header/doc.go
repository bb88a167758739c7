// Package header provides typed views over the wire bytes ISM frames and
// parses: ESP (RFC 4303 §2), AH (RFC 4302 §2), UDP encapsulation (RFC 3948
// §2) and the IPv4 (RFC 791) and IPv6 (RFC 8200) fields the data path needs.
//
// A view is a []byte; accessors read and write in place and allocate nothing.
// Accessors do not check bounds: call IsValid (or check the length against
// the exported minimum sizes) before using any of them.
package header
