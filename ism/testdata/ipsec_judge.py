#!/usr/bin/python3
"""Independent judge of the ESP and AH packets in a capture, for
ism/wire_test.go, built on scapy's scapy.layers.ipsec.SecurityAssociation
(python3-scapy 2.5, python3-cryptography).

Reads a request as JSON on stdin:

  {"pcap": PATH, "runs": [[SA, ...], ...]}

and writes {"scapy": version, "runs": [[RESULT, ...], ...]} as JSON on
stdout: for each run, every IPv4 packet of the capture is looked up by
protocol and SPI among that run's SAs and decrypted or verified with the ICV
check on. Runs are independent: a test gives a second run with a wrong key
to show that the check rejects what it must. An SA:

  proto       "ESP" or "AH"
  spi         the SPI
  crypt_algo  scapy's name ("3DES", "DES", "AES-CBC", "AES-GCM", "NULL") or
              null; crypt_key: hex, with the 4-byte salt for AES-GCM
  auth_algo   scapy's name ("HMAC-SHA1-96", "HMAC-MD5-96") or null;
              auth_key: hex
  tunnel      true for tunnel mode (the result is the inner packet), false
              for transport mode (the result is the rebuilt packet)

A result, one per packet in capture order:

  {"frame": N (from 1), "proto": "ESP"|"AH"|null, "spi", "seq",
   "udp": ESP in UDP (RFC 3948), "ok": the ICV verified and the packet
   decrypted, "error": text, "inner": {"src", "dst", "proto", "icmp_type",
   "icmp_id", "icmp_seq"} or null}

scapy dissects UDP port 4500 as ESP (RFC 3948 §2.2); nothing here touches
the network.
"""

import json
import sys

import scapy
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.ipsec import AH, ESP, SecurityAssociation
from scapy.utils import rdpcap


def unhex(s):
    return bytes.fromhex(s) if s else None


def make_sa(d):
    proto = ESP if d["proto"] == "ESP" else AH
    return SecurityAssociation(
        proto,
        spi=d["spi"],
        crypt_algo=d.get("crypt_algo"),
        crypt_key=unhex(d.get("crypt_key")),
        auth_algo=d.get("auth_algo"),
        auth_key=unhex(d.get("auth_key")),
        # decrypt only tests whether a tunnel header is set: tunnel mode
        # returns the inner packet.
        tunnel_header=IP() if d.get("tunnel") else None,
    )


def describe(ip):
    out = {"src": ip.src, "dst": ip.dst, "proto": ip.proto,
           "icmp_type": None, "icmp_id": None, "icmp_seq": None}
    if ICMP in ip:
        icmp = ip[ICMP]
        out.update(icmp_type=icmp.type, icmp_id=icmp.id, icmp_seq=icmp.seq)
    return out


def judge(pkts, sas):
    table = {(d["proto"], d["spi"]): make_sa(d) for d in sas}
    results = []
    for n, pkt in enumerate(pkts, 1):
        r = {"frame": n, "proto": None, "spi": None, "seq": None,
             "udp": False, "ok": False, "error": None, "inner": None}
        results.append(r)
        if IP not in pkt:
            r["error"] = "not IPv4"
            continue
        ip = IP(bytes(pkt[IP]))
        if AH in ip:
            layer, name = ip[AH], "AH"
        elif ESP in ip:
            layer, name = ip[ESP], "ESP"
        else:
            r["error"] = "neither ESP nor AH"
            continue
        r.update(proto=name, spi=layer.spi, seq=layer.seq, udp=UDP in ip)
        sa = table.get((name, layer.spi))
        if sa is None:
            r["error"] = "no SA for SPI 0x%08x" % layer.spi
            continue
        try:
            inner = sa.decrypt(ip)
        except Exception as e:  # IPSecIntegrityError, InvalidTag, ...
            r["error"] = "%s: %s" % (type(e).__name__, e)
            continue
        r["ok"] = True
        # scapy leaves what follows AH undissected (it binds AH to IP for
        # next header 0, not 4, and nothing to ICMP): dissect the result
        # again from its bytes.
        r["inner"] = describe(IP(bytes(inner)))
    return results


def main():
    req = json.load(sys.stdin)
    pkts = rdpcap(req["pcap"])
    out = {"scapy": scapy.VERSION, "runs": [judge(pkts, sas) for sas in req["runs"]]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
