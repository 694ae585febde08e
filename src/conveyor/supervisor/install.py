"""`conveyor export supervisord --install`: put the exported file where this system's
supervisord reads it, then ``supervisorctl reread``, ``update``, ``start`` and ``status``.

Where supervisord's packaged config includes program files from:

| system | directory | extension |
|---|---|---|
| Debian, Ubuntu (``apt install supervisor``) | ``/etc/supervisor/conf.d/`` | ``.conf`` |
| RHEL, CentOS, Rocky, Alma, Fedora, Amazon Linux (EPEL) | ``/etc/supervisord.d/`` | ``.ini`` |
| Alpine, Arch | ``/etc/supervisor.d/`` | ``.ini`` |
| macOS with Homebrew | ``$(brew --prefix)/etc/supervisor.d/`` | ``.ini`` |

Anything else (or a supervisord of your own) takes ``--conf-dir``.
"""

from __future__ import annotations

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
            owner = f" && chown {self.user} {self.log_dir}" if self.user else ""
            steps.append(f"mkdir -p {self.log_dir}{owner}")
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
        directory, ext = conf_dir, ".conf"
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


def carry_out(install: Install, report: Callable[[str], None]) -> int:
    """Do ``install``; ``report(line)`` tells each step. Returns the exit code (0: done)."""
    if install.log_dir is not None:
        install.log_dir.mkdir(parents=True, exist_ok=True)
        if install.user is not None and os.geteuid() == 0:
            entry = _account(install.user)
            os.chown(install.log_dir, entry.pw_uid, entry.pw_gid)
        report(f"log directory {install.log_dir}")
    if not install.path.parent.is_dir():
        raise ConfigError(
            f"{install.path.parent} does not exist: is supervisord installed? (Debian: apt "
            "install supervisor; RHEL: dnf install supervisor) or pass --conf-dir DIR"
        )
    install.path.write_text(install.text)
    report(f"wrote {install.path}")
    for cmd in install.commands:
        report(f"$ {shlex.join(cmd)}")
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=CTL_TIMEOUT, check=False
            )
        except FileNotFoundError as exc:
            raise ConfigError(
                "supervisorctl is not on PATH: install supervisor, or run the steps "
                "shown by --dry-run by hand"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise ConfigError(
                f"{shlex.join(cmd)} did not answer in {CTL_TIMEOUT:g}s: check supervisord"
            ) from exc
        output = (done.stdout + done.stderr).rstrip()
        if output:
            report(output)
        if done.returncode != 0 and not _harmless(cmd, output):
            return done.returncode
    return 0


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
