"""Argument parsing shared by the sub-commands."""

from __future__ import annotations

import argparse

from idresnet.errors import did_you_mean


class StrictParser(argparse.ArgumentParser):
    """A sub-command parser whose errors are one line (exit 2), whose unknown-flag error
    lists the valid flags, and whose unknown names (a flag, a sub-command, a choice) come
    with the valid ones closest to them ("did you mean")."""

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        if extras:
            flags = sorted(o for a in self._actions for o in a.option_strings if o.startswith("--"))
            given = extras[0].partition("=")[0]
            self.error(f"unrecognized argument {extras[0]!r}; valid: {', '.join(flags)}{did_you_mean(given, flags)}")
        return ns, extras

    def _check_value(self, action, value):  # argparse's check of ``choices`` (sub-commands too)
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            exc.message += did_you_mean(value, action.choices)
            raise

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
