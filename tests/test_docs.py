"""Docs that match the code (issue 17): every ``cstowatch`` command line in README.md and docs/
names a real command and only options that its ``--help`` lists, and every ``make`` target the
README names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"(?:^|\s|`)(?:\.venv/bin/)?cstowatch((?: [^`|#\n]*)?)")


def command_lines() -> list[tuple[str, str]]:
    """(where, text after ``cstowatch``) for each command in inline code or a code block."""
    found = []
    for doc in DOCS:
        in_block = False
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
            if line.lstrip().startswith("```"):
                in_block = not in_block
                continue
            spans = [line] if in_block else re.findall(r"`([^`]*)`", line)
            for span in spans:
                for match in COMMAND.finditer(span):
                    found.append((f"{doc.name}:{number}", match.group(1).strip()))
    return found


HELP: dict[tuple[str, ...], str | None] = {}


def help_of(path: tuple[str, ...]) -> str | None:
    if path not in HELP:
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        HELP[path] = result.output if result.exit_code == 0 else None
    return HELP[path]


def resolve(words: list[str]) -> tuple[tuple[str, ...], str]:
    """The longest run of leading words that is a command, and its help text."""
    path: tuple[str, ...] = ()
    text = help_of(path)
    for word in words:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        longer = help_of((*path, word))
        if longer is None or longer == text:
            break
        path, text = (*path, word), longer
    assert text is not None
    return path, text


LINES = command_lines()


def test_the_docs_name_commands() -> None:
    assert len(LINES) > 30  # the parser finds them: a broken regex must not pass vacuously


@pytest.mark.parametrize(("where", "line"), LINES, ids=[w for w, _ in LINES])
def test_documented_command_line_matches_its_help(where: str, line: str) -> None:
    words = line.split()
    if not words or not re.fullmatch(r"[a-z][a-z-]*", words[0]):
        return  # prose ("cstowatch is ...") or the bare program name
    path, text = resolve(words)
    if not path:
        pytest.fail(f"{where}: `cstowatch {words[0]}` is not a command")
    for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line):
        assert option in text, f"{where}: `cstowatch {' '.join(path)}` has no option {option}"


def test_make_targets_in_the_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    named = set(re.findall(r"`make ([a-z][a-z-]*)`", (ROOT / "README.md").read_text("utf-8")))
    assert named and named <= targets, named - targets


def every_help() -> str:
    """The help texts of every command and group, joined."""
    texts, todo = [], [()]
    while todo:
        path = todo.pop()
        text = help_of(path)
        if text is None:
            continue
        texts.append(text)
        commands = re.search(r"Commands ─+╮\n(.*?)╰", text, flags=re.S)
        for name in re.findall(r"│ ([a-z][a-z-]*) ", commands.group(1) if commands else ""):
            todo.append((*path, name))
    return "\n".join(texts)


def test_options_named_alone_exist() -> None:
    """An option the prose names on its own (`--no-fresh`) is an option of some command, unless
    the program named last before it in the paragraph is a script (`bench/generalization.py`)."""
    helps = every_help()
    named = []
    for doc in DOCS:
        for paragraph in re.split(r"\n\s*\n", doc.read_text(encoding="utf-8")):
            program = "cstowatch"
            for span in re.findall(r"`([^`\n]*)`", paragraph):
                if re.match(r"(\.venv/bin/)?cstowatch\b", span):
                    program = "cstowatch"
                elif re.search(r"\.py\b", span) or span.startswith(("python", "prefect", "make")):
                    program = "other"
                elif span.startswith("--") and program == "cstowatch":
                    named.append((doc.name, span.split()[0].split("=")[0]))
    missing = sorted({(where, o) for where, o in named if o not in helps})
    assert len(named) > 10 and not missing, f"options no command has: {missing}"
