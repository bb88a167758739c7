#!/usr/bin/env bash
# ISM demo: two gateways in two network namespaces joined by a veth pair,
# with two manual secure tunnels between them (esp-3des-hmac-sha and
# esp-aes128-gcm16). Pings through both, prints `ismctl show ipsec tunnel
# detail` from both sides, and removes everything it made, even when
# interrupted. Run as root: make demo.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$here/bin}
tag=ismdemo$$
A=${tag}a B=${tag}b
work=$(mktemp -d /tmp/ismdemo.XXXXXX)
pids=()

cleanup() {
	set +e
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	ip netns del "$A" 2>/dev/null
	ip netns del "$B" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }
for b in ismd ismctl; do
	[ -x "$bin/$b" ] || { echo "demo: $bin/$b missing: run make build" >&2; exit 1; }
done

hex() { head -c "$1" /dev/urandom | od -An -v -tx1 | tr -d ' \n'; }

echo "== topology: $A (192.0.2.1) <-veth-> $B (192.0.2.2)"
ip netns add "$A"
ip netns add "$B"
ip link add "${tag}x" type veth peer name "${tag}y"
ip link set "${tag}x" netns "$A" name eth0
ip link set "${tag}y" netns "$B" name eth0
ip -n "$A" addr add 192.0.2.1/24 dev eth0
ip -n "$B" addr add 192.0.2.2/24 dev eth0
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done
# Hosts behind gateway B, one per tunnel.
ip -n "$B" addr add 203.0.113.1/32 dev lo
ip -n "$B" addr add 203.0.113.129/32 dev lo

# Keys: 3DES 24 bytes + HMAC-SHA1 20 bytes; AES-128-GCM 16 + 4 salt.
k1=$(hex 24) a1=$(hex 20) k2=$(hex 24) a2=$(hex 20)
g1=$(hex 20) g2=$(hex 20)

# The state files' wrapping key (each gateway has its own state directory:
# two daemons on one machine must not share one).
hex 32 > "$work/checkpoint.key"
chmod 600 "$work/checkpoint.key"

config() { # side src dst addr1 addr2 spi-in spi-out legacy-keys-in legacy-keys-out gcm-in gcm-out
	cat <<CONF
! ISM demo, gateway $1
control socket $work/$1.sock
checkpoint state-directory $work/$1-state
checkpoint key-file $work/checkpoint.key
ipsec transform-set legacy
  transform 1 esp-3des-hmac-sha
ipsec transform-set strong
  transform 1 esp-aes128-gcm16
interface tunnel ipsec:legacy
  ip address $4 255.255.255.252
  tunnel source $2
  tunnel destination $3
  tunnel transform-set legacy
  tunnel sa inbound esp spi 0x$6 cipher-key ${8% *} auth-key ${8#* }
  tunnel sa outbound esp spi 0x$7 cipher-key ${9% *} auth-key ${9#* }
interface tunnel ipsec:strong
  ip address $5 255.255.255.252
  tunnel source $2
  tunnel destination $3
  tunnel transform-set strong
  tunnel sa inbound esp spi 0x2$6 cipher-key ${10}
  tunnel sa outbound esp spi 0x2$7 cipher-key ${11}
CONF
}
config a 192.0.2.1 192.0.2.2 198.51.100.1 198.51.100.5 1001 2001 "$k2 $a2" "$k1 $a1" "$g2" "$g1" > "$work/a.conf"
config b 192.0.2.2 192.0.2.1 198.51.100.2 198.51.100.6 2001 1001 "$k1 $a1" "$k2 $a2" "$g1" "$g2" > "$work/b.conf"
cat >> "$work/a.conf" <<CONF
ip route 203.0.113.0 255.255.255.128 ipsec:legacy
ip route 203.0.113.128 255.255.255.128 ipsec:strong
CONF

for s in a b; do
	ns=$A; [ $s = b ] && ns=$B
	ip netns exec "$ns" "$bin/ismd" -check -config "$work/$s.conf"
	ip netns exec "$ns" "$bin/ismd" -config "$work/$s.conf" 2> "$work/$s.log" &
	pids+=($!)
done
for s in a b; do
	for _ in $(seq 50); do [ -S "$work/$s.sock" ] && break; sleep 0.1; done
	[ -S "$work/$s.sock" ] || { echo "demo: ismd $s did not start:"; cat "$work/$s.log"; exit 1; }
done

echo
echo "== ping 203.0.113.1 through ipsec:legacy (esp-3des-hmac-sha)"
ip netns exec "$A" ping -c 3 -i 0.2 -I 198.51.100.1 203.0.113.1
echo
echo "== ping 203.0.113.129 through ipsec:strong (esp-aes128-gcm16)"
ip netns exec "$A" ping -c 3 -i 0.2 -I 198.51.100.5 203.0.113.129

for s in a b; do
	echo
	echo "== gateway $s: ismctl show ipsec tunnel detail"
	"$bin/ismctl" -socket "$work/$s.sock" show ipsec tunnel detail
done
echo
echo "== gateway a: ismctl show ipsec tunnel"
"$bin/ismctl" -socket "$work/a.sock" show ipsec tunnel
