#!/usr/bin/env python3
"""Test helper for tests/datapath.rs (runs inside a network namespace).

xfer.py recv ADDR PORT        accept one TCP connection, print "<sha256> <bytes>" of what arrived
xfer.py send ADDR PORT FILE   connect (retrying up to 20 s), print "ecn" if the connection
                              negotiated ECN (TCP_INFO tcpi_options & TCPI_OPT_ECN), send FILE
xfer.py ping ADDR MAX         ICMP/ICMPv6 echo of every payload size 0..=MAX, don't fragment;
                              print the sizes that got no identical reply ("ok" if none)
"""
import hashlib, os, socket, struct, sys, time

def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET

def recv(addr, port):
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(1)
    print("listening", flush=True)
    c, _ = s.accept()
    h, n = hashlib.sha256(), 0
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        h.update(d)
        n += len(d)
    print(h.hexdigest(), n, flush=True)

def send(addr, port, path):
    deadline = time.time() + 20
    while True:
        try:
            c = socket.create_connection((addr, int(port)), timeout=30)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    print("ecn" if info[5] & 8 else "no-ecn", flush=True)
    c.settimeout(120)
    with open(path, "rb") as f:
        while True:
            d = f.read(1 << 20)
            if not d:
                break
            c.sendall(d)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    c.close()

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF

def ping(addr, maxsize):
    v6 = ":" in addr
    if v6:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        s.setsockopt(socket.IPPROTO_IPV6, 23, 2)  # IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DO
        req, rep = 128, 129
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
        req, rep = 8, 0
    s.settimeout(2)
    ident = os.getpid() & 0xFFFF
    failed = []
    for size in range(0, int(maxsize) + 1):
        payload = bytes((size + i) & 0xFF for i in range(size))
        ok = False
        for attempt in range(3):
            seq = (size * 3 + attempt) & 0xFFFF
            hdr = struct.pack("!BBHHH", req, 0, 0, ident, seq)
            c = 0 if v6 else csum(hdr + payload)
            pkt = struct.pack("!BBHHH", req, 0, c, ident, seq) + payload
            s.sendto(pkt, (addr, 0))
            deadline = time.time() + 2
            while time.time() < deadline and not ok:
                try:
                    d = s.recv(65535)
                except socket.timeout:
                    break
                if not v6:
                    d = d[(d[0] & 0x0F) * 4:]
                if len(d) >= 8:
                    t, _, _, i, q = struct.unpack("!BBHHH", d[:8])
                    if t == rep and i == ident and q == seq and d[8:] == payload:
                        ok = True
            if ok:
                break
        if not ok:
            failed.append(size)
    print("ok" if not failed else "failed: %s" % failed, flush=True)

if __name__ == "__main__":
    {"recv": recv, "send": send, "ping": ping}[sys.argv[1]](*sys.argv[2:])
