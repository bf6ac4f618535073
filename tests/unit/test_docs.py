"""The docs tell the truth about the commands and each other.

Every command example in README.md and docs/*.md — in fenced code blocks and in inline code —
that runs ``modelops`` (also ``.venv/bin/modelops``, ``python -m modelops``, ``python -m
flows.<flow>``, ``make run ARGS=...``) parses against the real command-line parser; every
``make <target>`` is a Makefile target; every ``prefect deployment run 'flow/name' -p key=...``
names a deployment of ``prefect.yaml`` and parameters of its flow; every ``python <script>.py``
names a file that exists; and every relative link (and its ``#anchor``) between pages resolves.

Conventions for writers (see docs/tests.md):

- A placeholder is a word in angle brackets, ``<MODEL>``; it is checked as the literal word
  ``MODEL``, so it may stand for a value (a model name, a path), never for a command or option.
- Inline code that is only a command's name (`modelops serve`) is a mention: it is checked as
  ``modelops serve --help``, so the command must exist. Anything longer must parse as written.
- Shell syntax is understood: ``\\`` continuations, ``# comments``, ``VAR=value`` prefixes,
  ``$( … )``, and ``|``, ``&&``, ``;``, ``&`` between commands (each command is checked).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import inspect
import io
import itertools
import re
import shlex
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from modelops.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# Fenced blocks in these languages hold no shell commands.
NOT_SHELL = {"text", "python", "py", "json", "yaml", "yml", "toml", "graphql", "sql", "dockerfile"}
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
PLACEHOLDER = re.compile(r"<([A-Za-z][\w-]*)>")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SEPARATORS = set("();<>|&")
PYTHONS = {"python", "python3", ".venv/bin/python", ".venv/bin/python3"}
# Worth tokenising: a line that mentions one of the programs this test checks.
CANDIDATE = re.compile(r"(^|[\s/($`;&|])(modelops|make|python3?|prefect)(\s|$)")


@dataclass(frozen=True)
class Example:
    """One command found in a page."""

    page: Path
    line: int
    text: str
    inline: bool

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


# ----------------------------------------------------------------------------- reading pages


def _blank_fences(text: str) -> tuple[str, list[tuple[int, str, list[str]]]]:
    """The page with its fenced blocks blanked (line numbers kept), and the blocks:
    (first line number of the block's content, language, lines)."""
    out: list[str] = []
    blocks: list[tuple[int, str, list[str]]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            blocks.append((number + 1, match.group(2).lower(), []))
            out.append("")
        elif fence is not None and line.strip().startswith(fence):
            fence = None
            out.append("")
        elif fence is not None:
            blocks[-1][2].append(line)
            out.append("")
        else:
            out.append(line)
    return "\n".join(out), blocks


def _inline_spans(prose: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each inline code span; a span may wrap over lines."""
    for match in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose):
        line = prose.count("\n", 0, match.start()) + 1
        yield line, " ".join(match.group(1).split())


def _logical_lines(lines: list[str], first: int) -> Iterator[tuple[int, str]]:
    """Shell lines with ``\\`` continuations joined, each with its first line number."""
    start, parts = first, list[str]()
    for offset, line in enumerate(lines):
        if not parts:
            start = first + offset
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        yield start, " ".join(parts)
        parts = []
    if parts:
        yield start, " ".join(parts)


def _examples() -> Iterator[Example]:
    for page in PAGES:
        prose, blocks = _blank_fences(page.read_text(encoding="utf-8"))
        for first, language, lines in blocks:
            if language in NOT_SHELL:
                continue
            for number, line in _logical_lines(lines, first):
                stripped = line.strip().removeprefix("$ ")
                if CANDIDATE.search(stripped):
                    yield Example(page, number, stripped, inline=False)
        for number, span in _inline_spans(prose):
            if CANDIDATE.search(span):
                yield Example(page, number, span, inline=True)


def _segments(text: str) -> list[list[str]]:
    """The simple commands of a shell line: split at ``|``, ``&&``, ``;``, ``&``, ``$( )``,
    comments dropped, placeholders turned into literal words, ``VAR=value`` prefixes and
    ``export``/``sudo``/``env`` dropped."""
    lexer = shlex.shlex(PLACEHOLDER.sub(r"\1", text), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    for token in lexer:
        if set(token) <= SEPARATORS:
            segments.append([])
        else:
            segments[-1].append(token.removesuffix("$"))
    out = []
    for words in segments:
        while words and (ASSIGNMENT.match(words[0]) or words[0] in {"env", "sudo", "time"}):
            words = words[1:]
        if words:
            out.append(words)
    return out


def _modelops_argv(words: list[str]) -> list[str] | None:
    """The arguments ``modelops`` gets from this command, or None if it is not one."""
    program = words[0]
    if program == "modelops" or program.endswith("/bin/modelops"):
        return words[1:]
    if program in PYTHONS and words[1:3] == ["-m", "modelops"]:
        return words[3:]
    if program in PYTHONS and len(words) > 2 and words[1] == "-m":
        module = words[2]
        if module.startswith("flows.") and module.count(".") == 1:
            return [_flow_module_command(module), *words[3:]]
    return None


@functools.cache
def _flow_module_command(module: str) -> str:
    """The command ``python -m flows.<flow>`` runs (its ``__main__`` block names it)."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        return f"(no such module {module})"
    found = re.search(r"run\(\[\s*\"([\w-]+)\"", path.read_text(encoding="utf-8"))
    return found.group(1) if found else f"(no command in {module}'s __main__ block)"


# ----------------------------------------------------------------------------- the real things


@functools.cache
def _parser(command: str | None) -> argparse.ArgumentParser:
    """The real parser, as ``modelops.cli.main`` builds it for this command (a flow command's
    options come from its flow, so each is built, and its flow imported, once)."""
    return build_parser(command)


def _parse_error(argv: list[str]) -> str | None:
    """None when the real parser accepts these arguments (``--help`` included), else why not."""
    command = next((a for a in argv if not a.startswith("-")), None)
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            _parser(command).parse_args(argv)
    except SystemExit as done:
        if done.code not in (0, None):
            return err.getvalue().strip().splitlines()[-1] if err.getvalue() else str(done)
    return None


@functools.cache
def _makefile() -> tuple[frozenset[str], dict[str, list[str]]]:
    """The Makefile's targets and each target's recipe lines."""
    targets: set[str] = set()
    recipes: dict[str, list[str]] = {}
    current: list[str] = []
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        rule = re.match(r"^([A-Za-z0-9_.-]+(?:[ \t]+[A-Za-z0-9_.-]+)*)[ \t]*:(?!=)", line)
        if rule and not line.startswith(".") and not line.startswith("\t"):
            names = rule.group(1).split()
            targets.update(names)
            current = []
            for name in names:
                recipes[name] = current
        elif line.startswith("\t"):
            current.append(line.strip())
    return frozenset(targets), recipes


@functools.cache
def _deployments() -> dict[str, inspect.Signature]:
    """``flow-name/deployment-name`` → the flow's signature, for every deployment declared."""
    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    out = {}
    for deployment in declared["deployments"]:
        module, attr = deployment["entrypoint"].split(":")
        flow = getattr(importlib.import_module(module), attr)
        out[f"{flow.name}/{deployment['name']}"] = inspect.signature(flow.fn)
    return out


def _make_problems(words: list[str]) -> list[str]:
    targets, recipes = _makefile()
    problems = []
    variables = dict(w.split("=", 1) for w in words[1:] if "=" in w and not w.startswith("-"))
    named = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
    for target in named:
        if target not in targets:
            problems.append(f"make {target}: no such target in the Makefile")
    # make <target> ARGS="..." hands ARGS to the command its recipe runs: check those too.
    for target in named:
        for recipe in recipes.get(target, []):
            found = re.search(r"/modelops ([\w-]+) \$\(ARGS\)", recipe)
            if found and "ARGS" in variables:
                argv = [found.group(1), *shlex.split(variables["ARGS"])]
                error = _parse_error(argv)
                if error:
                    problems.append(f"make {target} ARGS=...: modelops {shlex.join(argv)}: {error}")
    return problems


def _prefect_problems(words: list[str]) -> list[str]:
    if words[1:3] != ["deployment", "run"] or len(words) < 4:
        return []
    name = words[3]
    deployments = _deployments()
    if name not in deployments:
        return [f"prefect deployment run {name!r}: not a deployment of prefect.yaml"]
    problems = []
    parameters = deployments[name].parameters
    for flag, value in itertools.pairwise(words):
        if flag in ("-p", "--param", "--params"):
            key = value.split("=", 1)[0]
            if key not in parameters:
                problems.append(f"prefect deployment run {name!r}: the flow has no {key!r}")
    return problems


def _script_problems(words: list[str]) -> list[str]:
    if words[0] not in PYTHONS or len(words) < 2 or not words[1].endswith(".py"):
        return []
    return [] if (ROOT / words[1]).exists() else [f"{words[1]}: no such file"]


def _problems(example: Example) -> list[str]:
    try:
        segments = _segments(example.text)
    except ValueError as exc:  # an unclosed quote: prose, or a command no shell could run
        starts = example.text.split(maxsplit=1)[0]
        command = starts in PYTHONS or starts.rsplit("/", 1)[-1] in {"modelops", "make"}
        return [f"not a valid shell line ({exc})"] if command else []
    problems = []
    for words in segments:
        argv = _modelops_argv(words)
        if argv is not None:
            if example.inline and len(argv) <= 1 and len(segments) == 1:
                argv = [*argv, "--help"]  # a mention of a command: it must exist
            error = _parse_error(argv)
            if error:
                problems.append(f"modelops {shlex.join(argv)}: {error}")
        elif words[0] == "make":
            problems.extend(_make_problems(words))
        elif words[0] == "prefect":
            problems.extend(_prefect_problems(words))
        else:
            problems.extend(_script_problems(words))
    return problems


EXAMPLES = list(_examples())


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.where)
def test_every_command_example_runs_as_written(example: Example) -> None:
    problems = _problems(example)
    assert not problems, f"{example.where}: `{example.text}`\n  " + "\n  ".join(problems)


def test_the_docs_show_the_commands_people_use() -> None:
    """The extraction found them: the front page's two commands and many modelops examples."""
    shown = {(e.page.name, e.text) for e in EXAMPLES}
    assert any(page == "README.md" and text.startswith("make test") for page, text in shown)
    assert any(page == "README.md" and text.startswith("make run") for page, text in shown)
    commands = 0
    for example in EXAMPLES:
        with contextlib.suppress(ValueError):  # a line no shell could read: its own test fails
            commands += sum(1 for words in _segments(example.text) if _modelops_argv(words))
    assert commands >= 30


# ----------------------------------------------------------------------------- links


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = unicodedata.normalize("NFC", text).strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


@functools.cache
def anchors(page: Path) -> frozenset[str]:
    prose, _ = _blank_fences(page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for line in prose.splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return frozenset(out)


def _links() -> Iterator[tuple[Path, int, str]]:
    for page in PAGES:
        prose, _ = _blank_fences(page.read_text(encoding="utf-8"))
        prose = re.sub(r"`[^`]*`", lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)
        for match in re.finditer(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose):
            yield page, prose.count("\n", 0, match.start()) + 1, match.group(1)
        for match in re.finditer(r"^\s*\[[^\]]+\]:\s*(\S+)", prose, re.MULTILINE):
            yield page, prose.count("\n", 0, match.start()) + 1, match.group(1)


LINKS = [
    link for link in _links() if not re.match(r"^[a-z][a-z0-9+.-]*:", link[2])
]  # relative ones: http(s), mailto, ... are not ours to check


@pytest.mark.parametrize(
    "page, line, target", LINKS, ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _ in LINKS]
)
def test_every_link_between_pages_resolves(page: Path, line: int, target: str) -> None:
    where = f"{page.relative_to(ROOT)}:{line}: ({target})"
    path, _, anchor = target.partition("#")
    destination = (page.parent / path).resolve() if path else page
    assert destination.exists(), f"{where}: no such file {destination.relative_to(ROOT)}"
    if anchor:
        assert destination.suffix == ".md", f"{where}: an anchor into a page that is not markdown"
        assert anchor in anchors(destination), (
            f"{where}: no heading #{anchor} in {destination.relative_to(ROOT)} "
            f"(it has: {', '.join(sorted(anchors(destination)))})"
        )


def test_every_page_is_reachable_from_the_front_page() -> None:
    """Nobody finds a page nothing links to."""
    linked = {
        (page.parent / target.partition("#")[0]).resolve()
        for page, _, target in LINKS
        if target.partition("#")[0]
    }
    orphans = [p.relative_to(ROOT) for p in PAGES[1:] if p.resolve() not in linked]
    assert not orphans, f"no page links to: {orphans}"


def test_slugs_are_githubs() -> None:
    assert slug("The `training` flow") == "the-training-flow"
    assert slug("Errors, retries and what survives what") == "errors-retries-and-what-survives-what"
    assert slug("Promotion and rollback (`promotion`, `rollback` flows)") == (
        "promotion-and-rollback-promotion-rollback-flows"
    )
    assert slug("Prefect deployments (`prefect.yaml`) and the `lifecycle` flow") == (
        "prefect-deployments-prefectyaml-and-the-lifecycle-flow"
    )
