"""What a fuzz target is: a `Target` (a name plus a hypothesis strategy of `Case`s) and the rule for file errors.

A `Target` is a name plus a hypothesis strategy of `Case`s. A case is one call, drawn with wrong types, shapes,
devices, strides, special values, huge or empty sizes, or malformed files, and knows how to judge its outcome:
`check` asserts about a successful result (its size, type and, where cheap, its values), and `names` lists the
words an error message must contain (the argument's name, or a file's `path:line:`). test_fuzz.py runs every
target in registry.REGISTRY; a new op joins by adding a Target there (see README.md), not by editing the test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis.strategies as st


def _no_check(result: Any) -> None:
    """For cases whose success needs no more than not raising (rare: say so in the case's description)."""


@dataclass(frozen=True, eq=False)
class Case:
    """One drawn call. `call(workdir)` runs it in a fresh empty folder and returns what `check` inspects."""

    describe: str
    call: Callable[[Path], Any]
    check: Callable[[Any], None] = _no_check
    # An error message must contain at least one of these (an argument's name, a file path, a flag).
    names: tuple[str, ...] = ()
    # Replaces the `names` rule when set: asserts about the raised error (used for file:line messages).
    on_error: Callable[[BaseException], None] | None = None

    def __repr__(self) -> str:
        return self.describe


@dataclass(frozen=True)
class Target:
    """A function (or command) under fuzz: its cases and the outcomes it may have besides success."""

    name: str
    cases: st.SearchStrategy[Case]
    # The only exception types an invalid call may raise; anything else is a bug.
    errors: tuple[type[BaseException], ...] = (ValueError, TypeError)
    # Per-example wall-clock limit; a call still running after it counts as a hang.
    timeout_s: float = 10.0
    # Examples drawn per run, as a multiple of the hypothesis profile's max_examples (ci: 25).
    scale: float = 1.0
    # Cases that always run before the drawn ones: reproducers of bugs the fuzzer once found, kept so the
    # suite fails while they are unfixed and guards them afterwards.
    examples: tuple[Case, ...] = ()


def file_error(path: Path, text_lines: int) -> Callable[[BaseException], None]:
    """The rule for file parsers: the message starts with `path:line:`, line within the file (or one past it)."""

    def judge(error: BaseException) -> None:
        message = str(error)
        match = re.match(rf"{re.escape(str(path))}:(\d+): ", message)
        assert match, f"the error does not start with '{path}:LINE: ': {message!r}"
        line = int(match.group(1))
        assert 1 <= line <= text_lines + 1, f"line {line} is outside the file's {text_lines} lines: {message!r}"

    return judge
