// Package checkpoint keeps what an IPsec SA needs to carry on after its
// gateway stops: its identity, transform and keys, its outbound sequence
// number and inbound anti-replay window (RFC 4303 §3.3.3, §3.4.3), its
// lifetime used and its observed packet rate, and the IKE SAs of its tunnel
// as opaque records their daemons export. A restarted gateway reads its
// state file and resumes each outbound SA past the checkpoint by a margin
// larger than what it could have sent since (Policy.Margin), so that the
// peer's replay window, which remembers the old numbers, takes the new ones;
// a cluster node that takes over a tunnel group does the same with the
// records its previous owner wrote to etcd. An inbound SA resumes with the
// window of the checkpoint: what it had seen by then is refused, and a
// packet it took between the checkpoint and the stop could be replayed to
// it once (at most a period of the peer's traffic).
//
// Records are sealed with AES-256-GCM (Sealer) under a key the operator
// provides or the machine generates on first use (LoadKeyFile,
// MachineKey), and that key is never stored beside the state: neither the
// state file nor etcd ever holds an SA key in the clear. The state file is
// replaced atomically (StateFile.Save: temporary file, fsync, rename, fsync
// of the directory) and carries a version and the GCM tag, so that a torn,
// corrupt or foreign file gives an error that says which, never a panic.
//
// The package is a leaf beside ism and cluster: it imports neither, nor
// offload, nor etcd, so that a gateway without a cluster uses it without
// loading any cluster code.
package checkpoint
