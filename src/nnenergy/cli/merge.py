"""`nnenergy merge OUT IN [IN ...]`: datasets of several jobs or hosts into one (`nnenergy.measure.merge`)."""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from nnenergy.measure import merge as merging

    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(merging.__doc__.split("\n\n")[0] + "\nusage: nnenergy merge OUT IN [IN ...]", file=sys.stderr)
        return 2
    try:
        print(json.dumps(merging.merge(argv[0], argv[1:])))
    except merging.MergeError as exc:
        print(f"nnenergy merge: error: {exc}", file=sys.stderr)
        return 2
    return 0
