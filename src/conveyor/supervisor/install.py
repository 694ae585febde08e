"""`conveyor export supervisord --install`: put the exported file where this system's
supervisord reads it, then ``supervisorctl reread``, ``update``, ``start`` and ``status``.

Where supervisord's packaged config includes program files from:

| system | directory | extension |
|---|---|---|
| Debian, Ubuntu (``apt install supervisor``) | ``/etc/supervisor/conf.d/`` | ``.conf`` |
| RHEL, CentOS, Rocky, Alma, Fedora, Amazon Linux (EPEL) | ``/etc/supervisord.d/`` | ``.ini`` |
| Alpine, Arch | ``/etc/supervisor.d/`` | ``.ini`` |
| macOS with Homebrew | ``$(brew --prefix)/etc/supervisor.d/`` | ``.ini`` |

Anything else (or a supervisord of your own) takes ``--conf-dir``; the file's extension is
then the one that supervisord's ``[include] files=`` takes (read from ``--ctl-config``).

A file supervisord refuses (``reread`` fails, typically because supervisord has no
``CONVEYOR_URL`` in its environment) or does not include is taken out again, and the earlier
file put back: a bad program file would otherwise block ``reread``/``update`` of every other
program, and stop supervisord from starting at the next boot.
"""

from __future__ import annotations

import configparser
import fnmatch
import os
import pwd
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConfigError

#: ``/etc/os-release`` IDs (ID and ID_LIKE) -> (directory, extension).
_LINUX: dict[str, tuple[str, str]] = {
    "debian": ("/etc/supervisor/conf.d", ".conf"),
    "ubuntu": ("/etc/supervisor/conf.d", ".conf"),
    "rhel": ("/etc/supervisord.d", ".ini"),
    "fedora": ("/etc/supervisord.d", ".ini"),
    "centos": ("/etc/supervisord.d", ".ini"),
    "amzn": ("/etc/supervisord.d", ".ini"),
    "alpine": ("/etc/supervisor.d", ".ini"),
    "arch": ("/etc/supervisor.d", ".ini"),
}
#: Seconds any one supervisorctl call may take (``start`` waits for every worker).
CTL_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class Install:
    """What ``--install`` does: the file it writes and the commands it runs after."""

    path: Path
    text: str
    log_dir: Path | None
    user: str | None
    commands: tuple[tuple[str, ...], ...]

    def describe(self) -> list[str]:
        """The steps as lines a person can run by hand."""
        steps = []
        if self.log_dir is not None:
            where = shlex.quote(str(self.log_dir))
            owner = f" && chown {shlex.quote(self.user)} {where}" if self.user else ""
            steps.append(f"mkdir -p {where}{owner}")
        steps.append(f"write {self.path}")
        return steps + [shlex.join(c) for c in self.commands]


def config_dir(os_release: str | None = None, platform: str = sys.platform) -> tuple[Path, str]:
    """Where this system's supervisord reads program files, and their extension."""
    if platform == "darwin":
        prefix = os.environ.get("HOMEBREW_PREFIX") or (
            "/opt/homebrew" if Path("/opt/homebrew").is_dir() else "/usr/local"
        )
        return Path(prefix) / "etc" / "supervisor.d", ".ini"
    if os_release is None:
        try:
            os_release = Path("/etc/os-release").read_text()
        except OSError:
            os_release = ""
    fields = dict(line.split("=", 1) for line in os_release.splitlines() if "=" in line)
    ids = [fields.get("ID", "").strip("\"'"), *fields.get("ID_LIKE", "").strip("\"'").split()]
    for system in ids:
        if system in _LINUX:
            directory, ext = _LINUX[system]
            return Path(directory), ext
    shown = fields.get("PRETTY_NAME", "").strip("\"'") or platform
    raise ConfigError(
        f"cannot tell where supervisord reads program files on {shown}: pass --conf-dir DIR "
        "(a directory its supervisord.conf includes under [include] files=)"
    )


def plan(
    text: str,
    *,
    conf_dir: Path | None,
    ctl_config: Path | None,
    log_dir: str | None,
    user: str | None,
) -> Install:
    """The install of ``text`` (the exported ``conveyor.conf``)."""
    if conf_dir is None:
        directory, ext = config_dir()
    else:
        directory, ext = conf_dir, _included_extension(conf_dir, ctl_config)
    ctl: tuple[str, ...] = ("supervisorctl",)
    if ctl_config is not None:
        ctl += ("-c", str(ctl_config))
    commands = (
        (*ctl, "reread"),
        (*ctl, "update", "conveyor"),
        (*ctl, "start", "conveyor:*"),
        (*ctl, "status", "conveyor:*"),
    )
    return Install(
        path=directory / f"conveyor{ext}",
        text=text,
        log_dir=None if log_dir is None else Path(log_dir),
        user=user,
        commands=commands,
    )


def _included_extension(conf_dir: Path, ctl_config: Path | None) -> str:
    """``.ini`` when the ``[include] files=`` of ``ctl_config`` takes ``conveyor.ini`` in
    ``conf_dir`` and not ``conveyor.conf``; else ``.conf``."""
    if ctl_config is None:
        return ".conf"
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(ctl_config)
        patterns = parser.get("include", "files", fallback="").split()
    except (OSError, configparser.Error):
        return ".conf"
    here = ctl_config.parent
    for ext in (".conf", ".ini"):
        path = str((conf_dir / f"conveyor{ext}").absolute())
        if any(fnmatch.fnmatch(path, str(here / p)) for p in patterns):
            return ext
    return ".conf"


def carry_out(install: Install, report: Callable[[str], None]) -> int:
    """Do ``install``; ``report(line)`` tells each step. Returns the exit code (0: done).

    A file supervisord refuses or does not include is taken out again (the earlier one put
    back), and the `ConfigError` says why and what to do."""
    if install.log_dir is not None:
        try:
            install.log_dir.mkdir(parents=True, exist_ok=True)
            if install.user is not None and os.geteuid() == 0:
                entry = _account(install.user)
                os.chown(install.log_dir, entry.pw_uid, entry.pw_gid)
        except OSError as exc:
            raise ConfigError(
                f"cannot make the log directory {install.log_dir}: {exc.strerror} "
                "(run --install as root, e.g. with sudo, or pass another --log-dir)"
            ) from None
        report(f"log directory {install.log_dir}")
    if not install.path.parent.is_dir():
        raise ConfigError(
            f"{install.path.parent} does not exist: is supervisord installed? (Debian: apt "
            "install supervisor; RHEL: dnf install supervisor) or pass --conf-dir DIR"
        )
    try:
        earlier = install.path.read_text() if install.path.exists() else None
        install.path.write_text(install.text)
    except OSError as exc:
        raise ConfigError(
            f"cannot write {install.path}: {exc.strerror} (run --install as root, e.g. with "
            "sudo, or pass --conf-dir DIR)"
        ) from None
    report(f"wrote {install.path}")
    for cmd in install.commands:
        done, output = _ctl(cmd, report)
        problem = _refused(cmd, done.returncode, output)
        if output and problem != _NO_URL:  # that one lists supervisord's variables: noise
            report(output)
        if problem is not None:
            undone = _take_back(install.path, earlier)
            raise ConfigError(f"supervisord {problem} {install.path} ({undone}): {_FIX[problem]}")
        if done.returncode != 0 and not _harmless(cmd, output):
            return done.returncode
    return 0


def _ctl(
    cmd: tuple[str, ...], report: Callable[[str], None]
) -> tuple[subprocess.CompletedProcess[str], str]:
    report(f"$ {shlex.join(cmd)}")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=CTL_TIMEOUT, check=False)
    except FileNotFoundError as exc:
        raise ConfigError(
            "supervisorctl is not on PATH: install supervisor, or run the steps "
            "shown by --dry-run by hand"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(
            f"{shlex.join(cmd)} did not answer in {CTL_TIMEOUT:g}s: check supervisord"
        ) from exc
    return done, (done.stdout + done.stderr).rstrip()


_NO_URL = "has no CONVEYOR_URL in its environment, so it refused"
#: What to do when supervisord refused (``reread``) or ignored (``update``) the file.
_FIX = {
    _NO_URL: (
        "give it one (systemctl edit supervisor, or supervisord on RHEL: [Service] "
        "EnvironmentFile=/etc/conveyor/conveyor.env, then restart it; see docs/deployment.md) "
        "and install again"
    ),
    "refused": "fix what `supervisorctl reread` printed above and install again",
    "does not include": (
        "its [include] files= does not cover that file: pass --conf-dir DIR, a directory it "
        "includes, and --ctl-config FILE, its supervisord.conf"
    ),
}


def _refused(cmd: tuple[str, ...], code: int, output: str) -> str | None:
    """Why supervisord did not take the file, as a key of `_FIX` (``None``: it did)."""
    if cmd[-1] == "reread" and code != 0:
        if "ENV_CONVEYOR_URL" in output:
            return _NO_URL
        return "refused"
    if cmd[-2] == "update" and "no such group" in output:
        return "does not include"
    return None


def _take_back(path: Path, earlier: str | None) -> str:
    """Put ``path`` back as it was before the install; says what became of it."""
    try:
        if earlier is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(earlier)
    except OSError as exc:
        return f"could not take it out again, {exc.strerror}: remove it by hand"
    if earlier is None:
        return "taken out again: your other programs are unaffected"
    return "the earlier file is back"


def _harmless(cmd: tuple[str, ...], output: str) -> bool:
    """A non-zero exit that is no failure: ``start`` of workers ``update`` already started,
    or ``status`` listing one that is between a recycle and its restart (the listing says)."""
    if cmd[-2] == "status":
        return True
    lines = [line for line in output.splitlines() if "ERROR" in line]
    return cmd[-2] == "start" and all("already started" in line for line in lines)


def _account(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(
            f"--user {user!r}: no such account on this machine; create it or name another"
        ) from None
