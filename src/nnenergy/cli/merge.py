"""`nnenergy merge [--append] OUT IN [IN ...]`: datasets of several jobs or hosts into one
(`nnenergy.measure.merge`)."""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from nnenergy.measure import merge as merging

    append = "--append" in argv
    argv = [a for a in argv if a != "--append"]
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(merging.__doc__.split("\n\n")[0] + "\nusage: nnenergy merge [--append] OUT IN [IN ...]\n"
              "  --append: add to OUT when it already holds a dataset\n"
              "exit status: 0 merged, 2 bad input (nothing written)", file=sys.stderr)
        return 2
    try:
        print(json.dumps(merging.merge(argv[0], argv[1:], append=append)))
    except merging.MergeError as exc:
        print(f"nnenergy merge: error: {exc}", file=sys.stderr)
        return 2
    return 0
