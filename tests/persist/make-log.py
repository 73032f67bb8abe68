#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes DIR/clusterhub.log holding N string keys (key:NNN = 100-byte value), some with a TTL,
# in the format of service/persist/persist-log.h: for measuring the load time (docs/persistence.md).
# usage: make-log.py DIR N
import os, struct, sys, time, zlib

d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
def s(b):
    return struct.pack('<I', len(b)) + b + b'\0'
deadline = int(time.time() * 1000) + 3600_000
with open(os.path.join(d, 'clusterhub.log'), 'wb') as f:
    f.write(b'CHUBLOG\n' + struct.pack('<II', 1, 0))
    out = []
    for i in range(n):
        p = (b'\x01' + s(b'default') + s(b'key:%d' % i) + struct.pack('<q', deadline if i % 10 == 0 else 0)
             + b's' + s(b'v' * 100))
        out.append(struct.pack('<II', len(p), zlib.crc32(p)) + p)
        if len(out) == 65536:
            f.write(b''.join(out)); out = []
    f.write(b''.join(out))
