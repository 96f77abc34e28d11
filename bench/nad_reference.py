#!/usr/bin/env python3
"""The 11 NAD features (shared/specs/nad-features.md) from tshark field export: the baseline
tool chain of bench/nad.sh, written straight from the spec and independent of palisade-nad.

Input (stdin): `tshark -T fields -E separator=, -E occurrence=f` with the fields of FIELDS.
Output (stdout): the spec's CSV, rows sorted by VM (in --vm order) then window.
Limits: IPv6 extension headers are not walked (ports come from tshark's tcp/udp fields only when
the IPv6 next header is TCP/UDP), and the VLAN tag depth is not checked; the generated benchmark
captures use neither.
"""
import argparse
import math
import sys
from collections import defaultdict

FIELDS = ["frame.time_epoch", "frame.len", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto",
          "ipv6.nxt", "ip.frag_offset", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
          "tcp.flags.syn", "tcp.flags.ack"]
HEADER = ("vm,window_start,access_port,ip_entro,service_port_entro,syn_rate,bps,pps,packet_per_ip,"
          "ip_count,syn_per_ip,bytes_per_ip,syn_count")


def ns(epoch):
    s, _, frac = epoch.partition(".")
    return int(s) * 1_000_000_000 + int((frac + "000000000")[:9])


def truthy(v):
    return v in ("1", "True", "true")


def entropy(counts):
    counts = [c for c in counts if c > 0]
    if len(counts) < 2:
        return 0.0
    total = sum(counts)
    return -sum((c / total) * math.log2(c / total) for c in counts)


def fmt(x):
    return repr(float(x)).removesuffix(".0") if float(x).is_integer() else repr(float(x))


class Window:
    __slots__ = ("packets", "bytes", "syn", "peers", "clients", "service")

    def __init__(self):
        self.packets = self.bytes = self.syn = 0
        self.peers = defaultdict(int)
        self.clients = defaultdict(set)
        self.service = defaultdict(int)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vm", action="append", required=True)
    ap.add_argument("--window", type=float, required=True)
    ap.add_argument("--print-fields", action="store_true")
    a = ap.parse_args()
    if a.print_fields:
        print(" ".join("-e " + f for f in FIELDS))
        return
    w_ns = round(a.window * 1e9)
    vms = set(a.vm)
    windows = {vm: {} for vm in a.vm}
    for line in sys.stdin:
        f = line.rstrip("\n").split(",")
        if len(f) < len(FIELDS):
            continue
        t, length, s4, d4, s6, d6, proto, nxt, frag, tsp, tdp, usp, udp, syn, ack = f[:15]
        src, dst = (s4, d4) if s4 else (s6, d6)
        if not src or (src not in vms and dst not in vms):
            continue
        p = proto if s4 else nxt
        first = not frag or frag == "0"
        dport = None
        if first and p == "6" and tdp:
            dport = int(tdp)
        elif first and p == "17" and udp:
            dport = int(udp)
        is_syn = first and p == "6" and truthy(syn) and not truthy(ack)
        k = ns(t) // w_ns
        for vm in {src, dst} & vms:
            win = windows[vm].get(k)
            if win is None:
                win = windows[vm][k] = Window()
            win.packets += 1
            win.bytes += int(length)
            win.syn += is_syn
            win.peers[dst if src == vm else src] += 1
            if dst == vm and dport is not None:
                win.clients[src].add(dport)
                win.service[dport] += 1
    out = [HEADER]
    w_s = w_ns / 1e9
    for vm in a.vm:
        ks = windows[vm]
        if not ks:
            continue
        for k in range(min(ks), max(ks) + 1):
            win = ks.get(k, Window())
            n, b, s, ips = win.packets, win.bytes, win.syn, len(win.peers)
            div = lambda x, y: x / y if y else 0.0
            start = k * w_ns
            start_s = str(start // 1_000_000_000) if w_ns % 1_000_000_000 == 0 else repr(start / 1e9)
            vals = [entropy([len(v) for v in win.clients.values()]), entropy(win.peers.values()),
                    entropy(win.service.values()), div(s, n), b / w_s, n / w_s, div(n, ips), ips,
                    div(s, ips), div(b, ips), s]
            out.append(",".join([vm, start_s] + [fmt(v) for v in vals]))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
