// Package cluster runs a set of ISM gateways as one, on etcd
// (go.etcd.io/etcd/client/v3: leases, transactions, watches and the
// concurrency package's elections; no protocol of its own). Tunnels are
// gathered in tunnel groups, each with a virtual address (VIP) in its
// transport VR; exactly one node owns a group at a time, and the owner
// keeps in etcd what another node needs to carry the group's tunnels on
// without renegotiating: their SAs with keys, outbound sequence
// checkpoints and replay windows, and their IKE SAs, as
// checkpoint.Tunnel records sealed with the cluster key.
//
// # Ownership
//
// Each node holds one lease (TTL 2 s by default) and registers under it.
// Each group has an election (concurrency.Election) whose keys hang off
// the candidates' leases: the candidate with the lowest create revision
// owns the group. Nodes campaign only for the groups that balancing
// (assign: by tunnel count, moving as few groups as it can) designates
// for them, so a joining node takes its share and a draining node's
// groups move: the owner of a group designated elsewhere hands it over
// once the designated node is queued behind it (final checkpoint, Stop,
// then one guarded transaction recording the stop and deleting its
// election key). When a node dies, its lease expires, its keys go, and
// the designated survivor's campaign wins: it reads the group's records,
// and the gateway adds the VIP, installs the SAs resumed past their
// margins and lets IKE carry on.
//
// The owner writes a checkpoint of each group every period (1 s by
// default) in one transaction guarded by the create revision of its
// election key, so that only the owner's writes land: a deposed owner's
// are refused, and it stops the group.
//
// # Fencing
//
// The rule: a node stops owning its groups (Gateway.Stop: no packet
// leaves the VIP, and the VIP is removed) at
//
//	s + TTL − margin
//
// where s is when the last lease renewal that etcd confirmed was SENT
// (not when its answer came back), and margin is Config.FenceMargin
// (TTL/4 by default: 500 ms of a 2 s TTL). Before sending from the VIP the
// data path checks the same deadline (Takeover.Valid), so a process that
// stalls past it sends nothing after it even before the timer runs.
//
// Why no other node can win before: etcd's leader renews a lease when it
// processes the renewal, at a time r ≥ s, setting its expiry to r + TTL
// (lessor.Renew); a new etcd leader extends every lease to its election
// time plus TTL plus an election timeout (lessor.Promote); the keys of a
// lease are deleted only after it has expired, by a revocation that goes
// through raft; and a campaign wins only once the keys before it are
// deleted. So the lease, and with it the owner's election keys, lives
// until at least s + TTL, and the successor starts after that: the old
// owner has stopped at least margin earlier. The margin covers the time
// Stop takes, the fence timer firing late, and the rate difference of the
// two machines' clocks (the owner's monotonic clock measures TTL − margin,
// the etcd leader's measures TTL). This needs etcd's lease checkpointing
// off (the default of etcd 3.4; --experimental-enable-lease-checkpoint
// would let a new leader restore a shorter remaining TTL).
//
// # etcd unreachable
//
// When a renewal fails, the node probes every member: a TCP connection
// refused means no etcd runs there; a member that answers says whether it
// leads. If every member refused or answered that it does not lead, the
// probe counts as a renewal sent when it began: owners keep forwarding
// with what they have, no group moves, and Status says etcd is
// unreachable. The argument: a leader that could expire the lease after
// the probe began was either elected after that, and then extended every
// lease to at least its election plus the TTL (plus etcd's election
// timeout, which Config.EtcdElectionTimeout lets the node count on, so
// that owners ride through a restart of all of etcd), or it was elected
// before and led through the moment its own probe found it down or not
// leading, which cannot be. A member that does not answer at all (a
// timeout, an unreachable network) may be leading on the far side of a
// partition, so it is no such evidence and the node fences as the rule
// says; so is a member missing from Config.Endpoints (the node checks the
// member list). The probe trusts that "connection refused" comes from the
// member's host, not from a firewall between (a partition that answers
// with resets or ICMP port unreachable would look like etcd being down:
// cut links by dropping).
//
// TTL and etcd's election timeout: a renewal cannot succeed while etcd
// elects a new leader. When the old leader's process dies, its host
// refuses connections and the probe holds the fence through the election;
// when its host vanishes (timeouts), the owners fence unless the election
// and their reconnection fit in TTL − margin minus a renewal interval. With
// etcd's default election timeout of 1 s that is tight for the default TTL
// of 2 s: run etcd with a shorter election timeout (500 ms, heartbeat
// 50 ms) or the cluster with a longer TTL.
//
// Writes: an owner puts each tunnel's record when it changed, and at
// least every 30 periods otherwise; one transaction per group per period
// carries them and the group's meta (more only past 100 changed tunnels).
//
// Nothing here imports ism: cmd/ismd makes a Node with ism's Gateway when
// the configuration has a cluster, and a gateway without one never runs
// etcd code.
package cluster
