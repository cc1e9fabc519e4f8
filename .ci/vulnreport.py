#!/usr/bin/env python3
"""Reads govulncheck's JSON stream and fails on a called vulnerability in a
dependency. Findings in the Go standard library of the machine's toolchain are
printed but not fatal (the toolchain is the machine's, not the project's).

Usage: vulnreport.py REPORT.json
"""
import json
import sys


def messages(text):
    dec = json.JSONDecoder()
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return
        obj, i = dec.raw_decode(text, i)
        yield obj


def main(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    called = {}  # (module, osv id) -> an example symbol
    scanned = False
    for m in messages(text):
        if "config" in m:
            scanned = True
        f = m.get("finding")
        if not f:
            continue
        trace = f.get("trace") or []
        # Only findings whose vulnerable symbol the code calls carry a function.
        if not trace or not trace[0].get("function"):
            continue
        frame = trace[0]
        key = (frame.get("module", "?"), f.get("osv", "?"))
        called.setdefault(key, frame.get("package", "") + "." + frame["function"])
    if not scanned:
        print("vulnreport: no govulncheck report in", path, file=sys.stderr)
        return 2
    stdlib = sorted(k for k in called if k[0] in ("stdlib", "toolchain"))
    deps = sorted(k for k in called if k[0] not in ("stdlib", "toolchain"))
    for module, osv in stdlib:
        print(f"warning: {osv} in the Go standard library ({called[(module, osv)]}); fixed by a newer Go toolchain")
    for module, osv in deps:
        print(f"VULNERABLE: {osv} in {module}, called via {called[(module, osv)]}")
    print(f"govulncheck: {len(deps)} called vulnerabilities in dependencies, {len(stdlib)} in the standard library")
    return 1 if deps else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
