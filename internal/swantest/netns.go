package swantest

import "github.com/ismgw/ism/netns"

// InNamespace runs f on an OS thread that has entered the named network
// namespace, then returns the thread to the original one (netns.Do).
// Sockets f opens stay in the namespace.
func InNamespace(ns string, f func() error) error { return netns.Do(ns, f) }
