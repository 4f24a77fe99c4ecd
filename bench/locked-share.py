#!/usr/bin/env python3
"""How much of a profile sits on locked read-modify-writes.

Usage: bench/locked-share.py PERF_DATA [TOP]

Reads a `perf record` profile (no call graphs needed) and prints the share
of all samples that fall on the instruction right after a `lock`-prefixed
instruction or an `xchg` with memory. On x86 each of those is a full
barrier: it waits for the stores before it to reach the cache, and sampling
puts its cost on the next instruction. The figure counts every atomic
read-modify-write of the code profiled: reference counts (`Bytes`, `Arc`),
and the lock and unlock of each mutex.

Symbols with names (ours, and any other binary with symbols) are read with
`perf annotate`, the TOP (default 40) largest ones. A stripped shared
library's samples (Debian's libzmq) come as bare addresses, which are
looked up in `objdump -d` of that library.
"""

import re
import subprocess
import sys

LOCKED = re.compile(r"^(lock\s|xchg\s+%\w+,.*\()")


def run(*args):
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def named(data, top):
    """(share of all samples, symbol) for the top named user symbols."""
    rows = []
    report = run("perf", "report", "-i", data, "--no-children", "--sort", "sym",
                 "-g", "none", "--stdio")
    for line in report.splitlines():
        m = re.match(r"^\s+([0-9.]+)%\s+\[\.\]\s+(.*?)\s*$", line)
        if m and not m.group(2).startswith("0x"):
            rows.append((float(m.group(1)), m.group(2)))
    out = []
    for share, sym in rows[:top]:
        text = run("perf", "annotate", "-i", data, "--stdio", "-s", sym)
        prev, hit, whole = None, 0.0, 0.0
        for line in text.splitlines():
            m = re.match(r"^\s+([0-9.]+)\s+:\s+[0-9a-f]+:\s+(.*)$", line)
            if not m:
                continue
            pct, ins = float(m.group(1)), m.group(2).strip()
            whole += pct
            if prev is not None and LOCKED.match(prev):
                hit += pct
            prev = ins
        if whole > 0:
            out.append((share * hit / whole, sym))
    return out


def bare(data):
    """(share of all samples) after a locked instruction, for samples that
    came as addresses in a stripped library, per library."""
    report = run("perf", "report", "-i", data, "--no-children", "--sort",
                 "dso,sym", "-g", "none", "--stdio")
    per_dso = {}
    for line in report.splitlines():
        m = re.match(r"^\s+([0-9.]+)%\s+(\S+)\s+\[\.\]\s+0x([0-9a-f]+)\s*$", line)
        if m:
            per_dso.setdefault(m.group(2), []).append(
                (float(m.group(1)), int(m.group(3), 16)))
    out = {}
    paths = run("perf", "report", "-i", data, "--sort", "dso", "-v",
                "--stdio").split()
    for dso, samples in per_dso.items():
        path = next((p for p in paths if p.endswith(dso)), None)
        if path is None:
            continue
        before, prev = {}, None
        for line in run("objdump", "-d", "--no-show-raw-insn", path).splitlines():
            m = re.match(r"^\s*([0-9a-f]+):\s+(.*)$", line)
            if m:
                before[int(m.group(1), 16)] = prev
                prev = m.group(2).strip()
        total = sum(s for s, _ in samples)
        hit = sum(s for s, a in samples if LOCKED.match(before.get(a) or ""))
        out[dso] = (total, hit)
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    data = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    rows = named(data, top)
    total = sum(s for s, _ in rows)
    print(f"named symbols (top {top}): {total:.1f} % of all samples "
          "on the instruction after a locked read-modify-write")
    for share, sym in sorted(rows, reverse=True):
        if share >= 0.2:
            print(f"  {share:5.2f} %  {sym}")
    for dso, (whole, hit) in bare(data).items():
        print(f"{dso} (stripped, {whole:.1f} % of all samples): {hit:.1f} % "
              "of all samples after a locked read-modify-write")


if __name__ == "__main__":
    main()
