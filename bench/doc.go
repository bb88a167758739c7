// Package bench holds the workloads and measurements behind cmd/ismbench and
// the packages' Go benchmarks: the engine workload (encapsulate or
// decapsulate bursts of packets with one transform through an offload.Engine
// bound to a chosen driver) with, in the same run, the plain standard-library
// cipher and MAC on the same buffers as the baseline; iperf3 through tunnels
// between network namespaces, ISM's against strongSwan's (MeasureTunnel,
// MeasurePeers); IKE setups per second and memory per tunnel, ISM and
// strongSwan initiating against one charon (MeasureIKE); and the reports
// they print, as a readable table or as JSON lines.
package bench
