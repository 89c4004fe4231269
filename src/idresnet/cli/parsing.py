"""Argument parsing shared by the sub-commands."""

from __future__ import annotations

import argparse


class StrictParser(argparse.ArgumentParser):
    """A sub-command parser whose errors are one line (exit 2) and whose unknown-flag
    error lists the valid flags."""

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        if extras:
            flags = sorted(o for a in self._actions for o in a.option_strings if o.startswith("--"))
            self.error(f"unrecognized argument {extras[0]!r}; valid: {', '.join(flags)}")
        return ns, extras

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message.splitlines()[0]}\n")


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that name trained weights and, where they lack a record, their network."""
    parser.add_argument(
        "--weights", required=True, metavar="RUN_OR_FILE", help="run folder, .safetensors or .ckpt file"
    )
    parser.add_argument("--model", help="network name (needed for weights without a record)")
    parser.add_argument("--model-kwargs", nargs="+", metavar="KEY=VALUE", help="model options")
    parser.add_argument("--num-classes", type=int, help="classes of the network (default: recorded)")
