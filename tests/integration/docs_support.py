"""Run the code blocks of a Markdown page, in order, the way a reader would.

A page is one example: its blocks run one after another in one scratch directory, against
one SQLite store (``CONVEYOR_URL=sqlite:///<dir>/x.db``), in an environment holding nothing
of the test run's own settings. What each fenced block means:

* ``python`` whose first line is ``# some/module.py``: that file is written (a module the
  later blocks import, or a script a later ``python some/module.py`` line runs);
* any other ``python`` block: run as a script in the directory;
* ``bash``: one command a line; ``conveyor ...`` runs the real CLI (``python -m conveyor``),
  ``python script.py`` the test's interpreter. ``<ID>`` stands for the newest job's id. A
  ``conveyor worker`` without ``--burst`` serves until no job is ready or running, then gets
  Ctrl-C (SIGINT) and must exit 0. A line whose comment says ``exits N`` may exit N.

A block that is deliberately not run has ``<!-- not-run: reason -->`` on the line above it;
anything else a block asks for (another command, another language) is an error, so a new
example cannot slip in untested. Every process is bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\S*)\s*$")
FILE_HEADER = re.compile(r"^#\s*([\w.-]+(?:/[\w.-]+)*\.py)\s*$")
EXIT_NOTE = re.compile(r"#.*\bexits? (\d+)\b")
ID_PLACEHOLDER = "<ID>"
SHELL_SYNTAX = frozenset({"&&", "||", "|", ";", ">", ">>", "<", "&"})

#: Variables the examples' processes inherit; nothing else of the test run leaks in.
KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


class DocError(AssertionError):
    """A block of the page failed, or cannot be run as written."""


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block: its language, its text and the line its fence opens on."""

    lang: str
    text: str
    line: int
    not_run: str | None = None


def read_blocks(markdown: str) -> list[Block]:
    """Every fenced block of a page, each with the reason of a not-run marker above it."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        close = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if close is None:
            raise DocError(f"line {i + 1}: a code block is never closed")
        text = "".join(f"{line}\n" for line in lines[i + 1 : close])
        blocks.append(Block(opening.group(1), text, i + 1, _marker_above(lines, i)))
        i = close + 1
    markers = sum(1 for line in lines if NOT_RUN.search(line))
    if markers != sum(1 for b in blocks if b.not_run is not None):
        raise DocError("a <!-- not-run: ... --> marker is not on the line above a code block")
    return blocks


def _marker_above(lines: list[str], fence: int) -> str | None:
    marker = NOT_RUN.search(lines[fence - 1]) if fence > 0 else None
    return None if marker is None else marker.group(1)


@dataclass(slots=True)
class PageRun:
    """One page's examples, run in ``workdir``; what was skipped and what ran is kept."""

    workdir: Path
    timeout: float = 60.0
    skipped: list[str] = field(default_factory=list)
    #: The commands the page ran, in order, as written (``<ID>`` filled in).
    ran: list[str] = field(default_factory=list)
    #: What each of those commands printed on stdout (a worker's output goes to a log file).
    printed: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        kept = {k: v for k, v in os.environ.items() if k in KEPT_ENV}
        self.env = {**kept, "CONVEYOR_URL": f"sqlite:///{self.workdir / 'x.db'}"}

    def run_page(self, page: Path) -> None:
        """Run every block of ``page`` in order; the first failure raises `DocError`."""
        for block in read_blocks(page.read_text()):
            where = f"{page.name}:{block.line}"
            if block.not_run is not None:
                self.skipped.append(block.not_run)
            elif block.lang == "python":
                self._python(block, where)
            elif block.lang in ("bash", "sh"):
                for command in _commands(block.text):
                    self._shell(command, where)
            else:
                raise DocError(
                    f"{where}: a ```{block.lang} block cannot be run; "
                    "mark it <!-- not-run: why --> if it is not meant to be"
                )

    def jobs(self) -> list[dict[str, Any]]:
        """Every job in the store, newest first, as ``conveyor jobs list --json`` gives them."""
        listing = self._call(["jobs", "list", "--json", "--limit", "100000"], "jobs list", {0})
        rows: list[dict[str, Any]] = json.loads(listing.stdout)
        return rows

    def states(self) -> dict[str, list[str]]:
        """The states of the store's jobs by task name, each list sorted."""
        found: defaultdict[str, list[str]] = defaultdict(list)
        for job in self.jobs():
            found[job["task"]].append(job["state"])
        return {task: sorted(states) for task, states in found.items()}

    def _python(self, block: Block, where: str) -> None:
        header = FILE_HEADER.match(block.text.split("\n", 1)[0])
        if header is not None:
            target = self.workdir / header.group(1)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text)
            return
        script = self.workdir / f"example_line_{block.line}.py"
        script.write_text(block.text)
        self.ran.append(f"python {script.name}")
        self.printed[self.ran[-1]] = self._run([sys.executable, script.name], where, {0}).stdout

    def _shell(self, line: str, where: str) -> None:
        argv = shlex.split(line, comments=True)
        script = len(argv) > 1 and argv[0] in ("python", "python3") and argv[1].endswith(".py")
        if SHELL_SYNTAX.intersection(argv) or "$(" in line:
            raise DocError(
                f"{where}: `{line}` needs a shell (pipes, &&, redirection); one command a line"
            )
        if not script and argv[0] != "conveyor":
            raise DocError(
                f"{where}: `{line}` is neither `conveyor ...` nor `python script.py`; "
                "mark the block <!-- not-run: why --> if it is not meant to be run"
            )
        if ID_PLACEHOLDER in argv:
            newest = self.jobs()
            if not newest:
                raise DocError(f"{where}: `{line}` needs a job id and the store has no job")
            argv = [newest[0]["id"] if a == ID_PLACEHOLDER else a for a in argv]
        self.ran.append(shlex.join(argv))
        note = EXIT_NOTE.search(line)
        allowed = {0} if note is None else {0, int(note.group(1))}
        if script:
            self.printed[self.ran[-1]] = self._run(
                [sys.executable, *argv[1:]], where, allowed
            ).stdout
        elif argv[1:2] == ["worker"] and "--burst" not in argv:
            self._serve(argv[1:], where)
        else:
            self.printed[self.ran[-1]] = self._call(argv[1:], where, allowed).stdout

    def _call(
        self, args: list[str], where: str, allowed: set[int]
    ) -> subprocess.CompletedProcess[str]:
        return self._run([sys.executable, "-m", "conveyor", *args], where, allowed)

    def _run(
        self, cmd: list[str], where: str, allowed: set[int]
    ) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                cmd,
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DocError(f"{where}: `{shlex.join(cmd[1:])}` ran over {self.timeout:g}s") from exc
        if proc.returncode not in allowed:
            raise DocError(
                f"{where}: `{shlex.join(cmd[1:])}` exited {proc.returncode}\n"
                f"--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"
            )
        return proc

    def _serve(self, args: list[str], where: str) -> None:
        """Run a long-lived worker until the work it was given is done, then press Ctrl-C."""
        log = self.workdir / f"worker_{len(self.ran)}.log"
        with (
            log.open("w") as sink,
            subprocess.Popen(
                [sys.executable, "-m", "conveyor", *args],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            ) as proc,
        ):
            try:
                deadline = time.monotonic() + self.timeout
                while not self._settled(proc.pid):
                    if proc.poll() is not None:
                        raise DocError(f"{where}: the worker exited {proc.returncode} early")
                    if time.monotonic() >= deadline:
                        raise DocError(f"{where}: jobs left after {self.timeout:g}s")
                    time.sleep(0.2)
                proc.send_signal(signal.SIGINT)
                code = proc.wait(timeout=self.timeout)
            except (DocError, subprocess.TimeoutExpired) as exc:
                raise DocError(f"{exc}\n--- worker output\n{log.read_text()}") from exc
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if code != 0:
            raise DocError(f"{where}: the worker exited {code} on Ctrl-C\n{log.read_text()}")

    def _settled(self, pid: int) -> bool:
        """Whether worker ``pid`` is serving and no job is left ready or running."""
        live = json.loads(self._call(["workers", "--json"], "workers", {0}).stdout)
        if not any(w["pid"] == pid for w in live):
            return False  # not started yet: Ctrl-C must reach a worker that is serving
        return not any(j["state"] in ("ready", "running") for j in self.jobs())


def _commands(script: str) -> list[str]:
    """The commands of a shell block: one a line, blank and comment lines left out."""
    return [
        s for s in (line.strip() for line in script.splitlines()) if s and not s.startswith("#")
    ]
