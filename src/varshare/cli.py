"""``varshare <command>``: the package's command line, and the only thing pipeline rules call."""

from __future__ import annotations

import argparse
import sys

import yaml

from varshare.config import ConfigError, dump_config, load_config, parse_yaml
from varshare.envs.suites import SUITES, build_suite
from varshare.envs.specs import specs_hash, specs_to_json
from varshare.io import atomic_write_text


def cmd_envs(args: argparse.Namespace) -> int:
    """Write the validated task specs of a suite as a JSON list."""
    specs = build_suite(args.suite)
    atomic_write_text(args.out, specs_to_json(specs))
    print(f"wrote {len(specs)} {args.suite} task specs to {args.out} (sha256 {specs_hash(specs)[:12]})")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate an experiment config (with ``--set key=value`` overrides); print it resolved."""
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"--set expects KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        overrides[key] = parse_yaml(value)
    try:
        config = load_config(args.config, overrides)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    if args.out:
        dump_config(config, args.out)
    print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="varshare", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    envs = commands.add_parser("envs", help="write a suite's task specs (JSON)")
    envs.add_argument("--suite", required=True, choices=sorted(SUITES))
    envs.add_argument("--out", required=True, help="output JSON file")
    envs.set_defaults(func=cmd_envs)

    check = commands.add_parser("check-config", help="validate an experiment config and print it resolved")
    check.add_argument("config", help="experiment config YAML")
    check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a value (dotted key, YAML value); repeatable")
    check.add_argument("--out", help="also write the resolved config here")
    check.set_defaults(func=cmd_check_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
