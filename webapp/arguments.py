"""Which arguments an allowlisted command takes: a small declared grammar and its checker.

Allowing ``date`` is not allowing ``date -s 2001-01-01``: the server may run as root, and
several harmless-looking commands change the machine or read what they should not with the
right option (``date --set``, ``date MMDDhhmm``, ``hostname NAME``, ``hostname -F FILE``,
``date -f FILE`` which prints every line it cannot parse). So each allowlisted command
declares the options and operands it takes (config.py's ``COMMAND_ARGUMENTS``), and anything
else is refused, naming the argument. Options are read as GNU getopt reads them: ``-lh`` is
``-l -h``, ``-n5`` and ``-n 5`` give ``-n`` a value, ``--lines=5`` and ``--lines 5`` too,
``--`` ends the options. Abbreviated long options (``--se`` for ``--set``) are refused, not
guessed.

This module imports nothing from Flask: config.py declares the table with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: What a command's operands (the arguments that are not options) may be; "text": every
#: argument is text, options included (echo, printf: they change nothing whatever they get).
OPERANDS = ("none", "any", "files", "format", "text")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


class ArgumentError(ValueError):
    """An argument the command does not declare; the message names it."""


@dataclass(frozen=True)
class Arguments:
    """The arguments one command takes.

    :param flags: options without a value (``-l``, ``--all``).
    :param valued: options that need a value, attached (``-n5``, ``--lines=5``) or as the next
        argument (``-n 5``).
    :param attached: options whose value is optional and can only be attached
        (``-Iseconds``, ``--color=never``); alone they are flags.
    :param operands: ``"none"``; ``"any"`` (such as sleep's durations); ``"files"`` (paths
        the command reads); ``"format"`` (one ``+FORMAT``, as date's); ``"text"`` (every
        argument, options too, as echo's).
    :param numbers: a negative number (``-5``) is an operand, not an option (seq).
    :param why: what the refused options would do, for the error message.
    """

    flags: frozenset[str] = field(default_factory=frozenset)
    valued: frozenset[str] = field(default_factory=frozenset)
    attached: frozenset[str] = field(default_factory=frozenset)
    operands: str = "none"
    numbers: bool = False
    why: str = ""

    def __post_init__(self) -> None:
        if self.operands not in OPERANDS:
            raise ValueError(f"operands must be one of {OPERANDS}, not {self.operands!r}")

    @classmethod
    def of(
        cls,
        flags: str = "",
        valued: str = "",
        attached: str = "",
        operands: str = "none",
        *,
        numbers: bool = False,
        why: str = "",
    ) -> Arguments:
        """Declare from space-separated option lists (reads like a man page's synopsis)."""
        return cls(
            frozenset(flags.split()),
            frozenset(valued.split()),
            frozenset(attached.split()),
            operands,
            numbers,
            why,
        )

    def summary(self) -> str:
        """What the command takes, for an error message and /api/status."""
        parts = sorted(self.flags | self.attached)
        parts += [f"{o} VALUE" for o in sorted(self.valued)]
        parts += {
            "none": [],
            "any": ["any operands"],
            "text": ["any text"],
            "files": ["files to read"],
            "format": ["+FORMAT"],
        }[self.operands]
        return ", ".join(parts) if parts else "no arguments"

    def check(self, command: str, args: Sequence[str]) -> None:
        """:raises ArgumentError: naming the first argument `command` does not take."""
        if self.operands == "text":
            return
        format_seen = False
        index = 0
        options_ended = False
        while index < len(args):
            arg = args[index]
            index += 1
            is_operand = options_ended or arg == "-" or not arg.startswith("-")
            if is_operand or (self.numbers and _NUMBER.fullmatch(arg)):
                format_seen = self._operand(command, arg, format_seen)
            elif arg == "--":
                options_ended = True
            elif arg.startswith("--"):
                index = self._long(command, arg, args, index)
            else:
                index = self._short(command, arg, args, index)

    def _long(self, command: str, arg: str, args: Sequence[str], index: int) -> int:
        name, eq, _value = arg.partition("=")
        if name in self.valued:
            if eq:
                return index
            return self._value_follows(command, name, args, index)
        if name in self.attached or (name in self.flags and not eq):
            return index
        raise self._refused(command, arg)

    def _short(self, command: str, arg: str, args: Sequence[str], index: int) -> int:
        for position in range(1, len(arg)):
            option = "-" + arg[position]
            if option in self.flags:
                continue
            if option in self.valued or option in self.attached:
                if position + 1 < len(arg) or option in self.attached:
                    return index  # the rest of the cluster is its value
                return self._value_follows(command, option, args, index)
            raise self._refused(command, option, arg)
        return index

    def _value_follows(self, command: str, option: str, args: Sequence[str], index: int) -> int:
        if index >= len(args):
            raise ArgumentError(f"{command}'s option {option!r} needs a value after it")
        return index + 1

    def _operand(self, command: str, arg: str, format_seen: bool) -> bool:
        if self.operands in ("any", "files"):
            return format_seen
        if self.operands == "format" and arg.startswith("+") and not format_seen:
            return True
        raise self._refused(command, arg)

    def _refused(self, command: str, arg: str, within: str | None = None) -> ArgumentError:
        shown = f"{arg!r} (in {within!r})" if within and within != arg else repr(arg)
        why = f"; {self.why}" if self.why else ""
        return ArgumentError(
            f"{command} does not take the argument {shown} here{why}. {command} takes: "
            f"{self.summary()} (start the server with --allow-any-command to pass anything)"
        )


def declared(table: Iterable[tuple[str, Arguments]]) -> dict[str, Arguments]:
    """A name → Arguments table (refuses a name declared twice, a likely copy-paste slip)."""
    out: dict[str, Arguments] = {}
    for name, arguments in table:
        if name in out:
            raise ValueError(f"{name!r} is declared twice")
        out[name] = arguments
    return out
