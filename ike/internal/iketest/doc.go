// Package iketest holds test doubles for the seam between IKE and the ISM
// line card: an Installer that records every call, a Listener that
// records events, and Transports over real UDP sockets or in memory.
package iketest
