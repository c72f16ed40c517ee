"""The edgesense command line."""

import sys


def main(argv=None):
    print("edgesense: not implemented yet", file=sys.stderr)
    return 1
