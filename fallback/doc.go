// Package fallback is ISM's pure-Go crypto engine: a driver.Driver that runs
// every transform of package transform with the standard library and
// golang.org/x/crypto only. It is always present, so that every SA has a
// driver even on hosts with no accelerator, and it is where SAs go when an
// accelerator refuses or faults.
//
// The engine runs ops in two ways: synchronously on the caller's goroutine
// (driver.Synchronous, the CPU-crypto action), and asynchronously on one
// queue pair per worker goroutine, so that a busy SA can use every core.
// Ops are processed in place and steady state allocates nothing.
package fallback
