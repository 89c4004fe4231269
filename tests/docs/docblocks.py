"""The code of the docs: fenced blocks of README.md and docs/*.md, and the shell commands in them.

A fence names its language: ``bash``/``sh``/``console`` (shell), ``python``, or a
language that is not code (``text``, ``yaml``, ...). In a shell block, ``\\`` continues a
line, ``#`` starts a comment, ``&&`` and ``;`` separate commands; in a ``console`` block
only the lines after a ``$ `` prompt are commands.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL = ("bash", "sh", "shell", "console")
PYTHON = ("python", "py")
NOT_CODE = ("text", "yaml", "json", "csv", "markdown", "diff")
_FENCE = re.compile(r"^( *)```(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository root
    line: int  # of the first line inside the fence
    lang: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Command:
    block: Block
    index: int  # in its block, from 0
    text: str  # continuations joined, comment dropped
    argv: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.block.id}#{self.index}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(paths=None) -> list[Block]:
    """Every fenced block of the Markdown files, in order."""
    found = []
    for path in paths or doc_files():
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            m = _FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            indent, lang, start = len(m.group(1)), m.group(2), i + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            body = "\n".join(line[indent:] for line in lines[start:end])
            found.append(Block(str(path.relative_to(ROOT)), start + 1, lang, body))
            i = end + 1
    return found


def _logical_lines(block: Block) -> list[str]:
    out, pending = [], ""
    lines = block.text.splitlines()
    if block.lang == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return out


def commands(block: Block) -> list[Command]:
    """The shell commands of a block, split at ``&&`` and ``;``."""
    found: list[Command] = []
    for line in _logical_lines(block):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words, current = list(lexer), []
        for word in [*words, ";"]:
            if word in (";", "&&"):
                if current:
                    found.append(Command(block, len(found), shlex.join(current), tuple(current)))
                current = []
            else:
                current.append(word)
    return found
