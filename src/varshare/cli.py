"""``varshare <command>``: the package's command line, and the only thing pipeline rules call."""

from __future__ import annotations

import argparse
import sys

from varshare.envs.suites import SUITES, build_suite
from varshare.envs.specs import specs_hash, specs_to_json
from varshare.io import atomic_write_text


def cmd_envs(args: argparse.Namespace) -> int:
    """Write the validated task specs of a suite as a JSON list."""
    specs = build_suite(args.suite)
    atomic_write_text(args.out, specs_to_json(specs))
    print(f"wrote {len(specs)} {args.suite} task specs to {args.out} (sha256 {specs_hash(specs)[:12]})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="varshare", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    envs = commands.add_parser("envs", help="write a suite's task specs (JSON)")
    envs.add_argument("--suite", required=True, choices=sorted(SUITES))
    envs.add_argument("--out", required=True, help="output JSON file")
    envs.set_defaults(func=cmd_envs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
