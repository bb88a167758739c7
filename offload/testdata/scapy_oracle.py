#!/usr/bin/python3
"""Independent ESP/AH judge for offload/oracle_test.go, built on scapy's
scapy.layers.ipsec.SecurityAssociation (python3-scapy 2.5).

Reads {"cases": [...]} as JSON on stdin and writes {"scapy": version,
"results": [...]} as JSON on stdout, one result per case, in order. A case:

  op            "decrypt" (packet is the outer packet) or "encrypt" (packet
                is the inner packet)
  proto         "ESP" or "AH"
  spi, seq      the SPI and the sequence number field (low 32 bits)
  esn_en, esn   extended sequence numbers and their high 32 bits
  crypt_algo    scapy's name ("AES-CBC", "3DES", ...) or null
  crypt_key     hex, salt included for AEADs; crypt_icv_size: int or null
  auth_algo     scapy's name ("HMAC-SHA1-96", ...) or null; auth_key: hex
  tunnel        null (transport mode) or {"src", "dst", "id", "df"}; the
                family follows the addresses; id and df apply to IPv4
  nat_t         null or {"sport", "dport"}: UDP encapsulation (RFC 3948)
  packet        hex
  iv            hex or null (encrypt: the explicit IV to use)

A result is {"ok": true, "packet": hex} or {"ok": false, "error": text}.
Nothing here touches the network.

scapy 2.5's transport-mode decryption of UDP-encapsulated ESP over IPv6
leaves the UDP header in the packet (_decrypt_esp rewrites the header under
ESP, which is the UDP header). For that case only, this script removes the
UDP header first, as an RFC 3948 §3.2 receiver does, and scapy decrypts the
ESP packet that remains.
"""

import json
import sys

import scapy
from scapy.config import conf
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import AH, ESP, SecurityAssociation


def unhex(s):
    return bytes.fromhex(s) if s else None


def parse(b):
    return IP(b) if b[0] >> 4 == 4 else IPv6(b)


def tunnel_header(t):
    if t is None:
        return None
    if ":" in t["src"]:
        return IPv6(src=t["src"], dst=t["dst"])
    return IP(src=t["src"], dst=t["dst"], id=t.get("id", 1), flags="DF" if t.get("df") else 0)


def strip_udp6(pkt):
    udp = pkt[UDP]
    if udp.underlayer is not pkt or not isinstance(udp.payload, ESP):
        raise ValueError("not IPv6/UDP/ESP")
    esp = bytes(udp.payload)
    ip6 = pkt.copy()
    ip6.remove_payload()
    ip6.nh = 50
    ip6.plen = len(esp)
    return IPv6(bytes(ip6) + esp)


def run(c):
    sa = SecurityAssociation(
        ESP if c["proto"] == "ESP" else AH,
        spi=c["spi"],
        seq_num=c["seq"],
        crypt_algo=c.get("crypt_algo"),
        crypt_key=unhex(c.get("crypt_key")),
        crypt_icv_size=c.get("crypt_icv_size"),
        auth_algo=c.get("auth_algo"),
        auth_key=unhex(c.get("auth_key")),
        tunnel_header=tunnel_header(c.get("tunnel")),
        nat_t_header=UDP(sport=c["nat_t"]["sport"], dport=c["nat_t"]["dport"]) if c.get("nat_t") else None,
        esn_en=c.get("esn_en", False),
        esn=c.get("esn", 0),
    )
    pkt = parse(bytes.fromhex(c["packet"]))
    if c["op"] == "decrypt" and c.get("nat_t") and c.get("tunnel") is None and pkt.version == 6:
        pkt = strip_udp6(pkt)
    if c["op"] == "decrypt":
        out = sa.decrypt(pkt)
    elif c["op"] == "encrypt":
        iv = c.get("iv")
        out = sa.encrypt(pkt, seq_num=c["seq"], iv=bytes.fromhex(iv) if iv is not None else None)
    else:
        raise ValueError("unknown op %r" % c["op"])
    return bytes(out).hex()


def main():
    if not conf.crypto_valid:
        sys.exit("scapy_oracle.py: scapy's IPsec needs python3-cryptography (apt-get install python3-cryptography)")
    cases = json.load(sys.stdin)["cases"]
    results = []
    for c in cases:
        try:
            results.append({"ok": True, "packet": run(c)})
        except Exception as e:  # report every failure as data, case by case
            results.append({"ok": False, "error": "%s: %s" % (type(e).__name__, e)})
    json.dump({"scapy": scapy.VERSION, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
