// Command ismbench is ISM's benchmark harness.
//
//	ismbench engine [-transform NAME] [-size BYTES] [-driver NAME|all] [-duration D] [-cores N] [-shared-sa] [-json]
//	ismbench tunnel [-transform NAME] [-duration D] [-encap udp|esp|esp,udp] [-peer strongswan|wireguard-go] [-ike-version 1|2] [-json]
//	ismbench ike [-version 1|2] [-tunnels N] [-window N] [-transform NAME] [-group G] [-quick] [-no-strongswan] [-json]
//	ismbench failover [-runs N] [-loss kill|link-down] [-dpd-silent D] [...] [-json]
//	ismbench cluster [-runs N] [-nodes 2|3] [-ttl D] [-interval D] [-ismd FILE] [-json]
//	ismbench restart [-runs N] [-checkpoint D] [-interval D] [-ismd FILE] [-json]
//	ismbench scale [-tunnels N] [-ike-version 1|2] [-window N] [-samples N] [-plot DIR] [-json]
//	ismbench soak [-tunnels N] [-duration D] [-lifetime D] [-reload-every D] [-churn N] [-restart-losing-deletes N] [-plot DIR] [-json]
//
// engine measures the ESP/AH engine's encapsulation and decapsulation per
// transform, size and driver against the plain standard-library cipher and
// MAC on the same buffers, measured in the same run (the ratio column).
// With -shared-sa it measures one SA pair on -cores crypto workers (the
// offload pipeline, every packet's order checked) against the same SA on
// one core, in the same run (the vs one core column, JSON vs_one_core).
//
// tunnel (root) sets up two gateways in two network namespaces joined by a
// veth pair and measures iperf3 TCP through a manual tunnel and over the
// bare veth in the same run. With -peer strongswan it measures, in one
// run and with the same transform, a signaled tunnel between two gateways
// (ESP in UDP), a gateway against strongSwan's charon, two charons
// against each other, and the bare veth. With -peer wireguard-go it also
// measures a wireguard-go tunnel between the same kind of namespaces (in
// this process, no kernel module) and sets ISM's rows against it; with
// -encap esp,udp it measures both encapsulations and their ratio.
//
// ike (root) sets up many tunnels in parallel (at most -window in flight)
// from a gateway to one charon, each with its own endpoint pair, then from
// another charon to it, and reports setups per second (IKEv1 main mode and
// quick mode, or with -version 2 IKEv2's IKE_SA_INIT and IKE_AUTH), the memory each initiator holds per established tunnel and
// the CPU time each side used; -quick adds runs where every tunnel shares
// one IKE SA.
//
// failover (root) runs ISM against two strongSwan charons, a tunnel's
// destination and its backup, with a stream of numbered UDP probes through
// the tunnel, loses the destination, and measures the time to DPD's
// verdict, the time from it to traffic through the backup, and the probes
// lost, against the configured DPD timers.
//
// cluster (root; etcd and ismd installed) runs a real three-member etcd
// cluster and ISM nodes (ismd processes) owning one tunnel group with its
// VIP, a peer gateway with a manual, an IKEv1 and an IKEv2 tunnel to it and
// 10 ms probes through each, kills the owner with SIGKILL and measures
// takeover_s (kill to the first probe through the survivor), lost_packets,
// renegotiations (IKE SAs the peer set up after the kill), replay_drops
// and the owner's etcd writes per second, against lease TTL + 1 s.
//
// restart (root; ismd installed) kills one gateway with SIGKILL and starts
// it again with the same configuration: resume_s is from the restart to
// the first probe through each tunnel (target 1 s), with the same counts.
//
// scale (root) sets up N tunnels (default 10,000, each with its own
// endpoint pair, so its own IKE SA) between two ISM gateways in two
// namespaces: the initiator, a hub in this process, loads their
// configuration and brings each up with a first packet (acquire); the
// responder runs in a child process so that each side's CPU time and
// memory are its own. It reports setups per second (and per second of the
// run), the time to 50/90/100 % up, live heap and RSS per established
// tunnel, CPU seconds per setup on each side, retransmissions and failures,
// pings through sampled tunnels, and with more than 1,000 tunnels the rate
// of a 1,000-tunnel run measured first.
//
// soak (root) brings the scale run's tunnels up, then runs them for
// -duration with SA lifetimes short enough for about 150 rekeys a second,
// reloads of both gateways that remove and add tunnels, and one restart of
// the responding gateway, while sampled tunnels carry a probe stream. It
// reports the probes lost (outside the restart, and during it), the slopes
// of heap and goroutines, file descriptors, whether the routes and rules
// match the configuration at the end, and the SAs left behind; it fails
// (exit status 1) when a configured tunnel is not up again at the end, an
// SA is left behind, routes or rules are out of step, a quick mode was
// refused as malformed or a file descriptor was left over.
// -restart-losing-deletes N makes the last N responder processes restart
// as crashed peers do, their deletes lost.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ismgw/ism/bench"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage: ismbench <command> [flags]

commands:
  engine   the ESP/AH engine per transform, size and driver, against the raw standard library
  tunnel   iperf3 TCP through an ISM tunnel between two namespaces, against the bare veth (root);
           with -peer strongswan also ISM against strongSwan and strongSwan against strongSwan,
           with -peer wireguard-go also a wireguard-go tunnel; -encap esp,udp both encapsulations
  ike      IKE setups per second and memory per tunnel, ISM and strongSwan against strongSwan (root)
  failover DPD detection and failover to a backup destination against strongSwan (root)
  cluster  kill -9 of a cluster node on etcd: takeover time, loss, renegotiations, replay drops (root)
  restart  kill -9 and restart of a gateway: time to resume its tunnels from its state file (root)
  scale    N tunnels between two ISM gateways: setups per second, memory and CPU per tunnel (root)
  soak     the scale run's tunnels under a rekey storm, reloads and a peer restart: losses and leaks (root)
`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	// Benchmarks that build namespaces take them down on the way out.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		bench.Abort()
		os.Exit(130)
	}()
	var err error
	switch os.Args[1] {
	case "engine":
		err = engine(os.Args[2:])
	case "tunnel":
		err = tunnel(os.Args[2:])
	case "ike":
		err = ike(os.Args[2:])
	case "failover":
		err = failover(os.Args[2:])
	case "cluster":
		err = cluster(os.Args[2:])
	case "restart":
		err = restart(os.Args[2:])
	case "scale":
		err = scale(os.Args[2:])
	case "soak":
		err = soak(os.Args[2:])
	case "scale-peer":
		err = scalePeer(os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "ismbench: unknown command %q\n", os.Args[1])
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ismbench: %v\n", err)
		os.Exit(1)
	}
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("ismbench "+name, flag.ExitOnError)
	return fs
}
