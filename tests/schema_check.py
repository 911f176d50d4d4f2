#!/usr/bin/env python3
"""Validate JSON Lines against docs/event.schema.json. Exit 0 when all lines pass.

Usage: schema_check.py SCHEMA FILE
"""
import json
import sys

from jsonschema import Draft202012Validator


def main() -> int:
    schema = json.load(open(sys.argv[1], encoding="utf-8"))
    v = Draft202012Validator(schema)
    bad = 0
    n = 0
    for i, line in enumerate(open(sys.argv[2], encoding="utf-8"), 1):
        if not line.strip():
            continue
        n += 1
        errs = list(v.iter_errors(json.loads(line)))
        for e in errs[:3]:
            print(f"line {i}: {'/'.join(map(str, e.absolute_path)) or '<event>'}: {e.message[:300]}")
        bad += bool(errs)
    print(f"{n} lines, {bad} invalid")
    return 1 if bad or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
