// Package bench holds the workloads and measurements behind cmd/ismbench and
// the packages' Go benchmarks: the engine workload (encapsulate or
// decapsulate bursts of packets with one transform through an offload.Engine
// bound to a chosen driver) with, in the same run, the plain standard-library
// cipher and MAC on the same buffers as the baseline; and the reports they
// print, as a readable table or as JSON lines.
package bench
