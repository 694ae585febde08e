"""``conveyor export``: write the configured pools as supervisord, systemd, docker-compose or
Kubernetes configs (see docs/deployment.md), and ``--install`` them under supervisord."""

from __future__ import annotations

import getpass
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.common import AppOption, JsonOption, err, handle_errors, out, print_json

if TYPE_CHECKING:
    from conveyor.supervisor.target import Target

_PathOpt = Annotated[Path | None, typer.Option(show_default=False)]


@handle_errors
def export(
    kind: Annotated[str, typer.Argument(help="supervisord, systemd, compose or kubernetes.")],
    pools: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[single|multi|POOL...]",
            show_default=False,
            help="Pools to export (default: by QUEUE_MULTI_WORKER), as for `conveyor run`.",
        ),
    ] = None,
    app_spec: AppOption = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write files here (default: print them).")
    ] = None,
    venv: Annotated[
        str | None,
        typer.Option(help="supervisord/systemd: the target's virtualenv (runs DIR/bin/conveyor)."),
    ] = None,
    python: Annotated[
        str | None,
        typer.Option(help="The target's Python (runs PYTHON -m conveyor)."),
    ] = None,
    program: Annotated[
        str | None,
        typer.Option("--command", help="The command that runs conveyor, e.g. 'uv run conveyor'."),
    ] = None,
    workdir: Annotated[
        str | None, typer.Option(help="supervisord/systemd: working directory (default: here).")
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            help="The account workers run as (supervisord/systemd default: yours; "
            "kubernetes: a numeric UID for runAsUser)."
        ),
    ] = None,
    log_dir: Annotated[
        str | None,
        typer.Option(help="supervisord: worker logs here (default: supervisord's childlogdir)."),
    ] = None,
    env_file: Annotated[
        str, typer.Option(help="systemd: the file with CONVEYOR_URL=...")
    ] = "/etc/conveyor/conveyor.env",
    image: Annotated[str, typer.Option(help="compose/kubernetes: the image.")] = "my-app:latest",
    secret_name: Annotated[
        str,
        typer.Option("--secret", help="kubernetes: the Secret with the backend URL (key 'url')."),
    ] = "conveyor",  # noqa: S107 - a Secret's name, not a secret
    metrics_port: Annotated[
        int, typer.Option(help="kubernetes: the port of /metrics, /livez, /readyz.", min=1)
    ] = 9184,
    autoscale: Annotated[
        str, typer.Option(help="kubernetes: hpa (CPU), keda (queue depth) or none.")
    ] = "hpa",
    prometheus: Annotated[
        str, typer.Option(help="kubernetes with keda: the Prometheus server KEDA queries.")
    ] = "http://prometheus-operated.monitoring.svc:9090",
    install: Annotated[
        bool, typer.Option(help="supervisord: install the file and start the workers.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option(help="With --install: show the steps, change nothing.")
    ] = False,
    conf_dir: Annotated[
        Path | None,
        typer.Option(help="With --install: supervisord's include directory (default: by OS)."),
    ] = None,
    ctl_config: Annotated[
        Path | None,
        typer.Option(help="With --install: supervisord.conf for supervisorctl -c."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write the pools as process-manager configs: one program, template unit, service or
    Deployment per pool, with its process count and a stop timeout longer than the
    worker's grace period. The backend URL is read from the environment, never written,
    and a worker without one refuses to start.

    ``--json``: ``{"kind": ..., "files": [{"name", "path", "text"}]}``, ``path`` being
    where the file was written (``null`` without ``--out``).
    """
    from conveyor.errors import ConfigError
    from conveyor.supervisor.config import load_pools
    from conveyor.supervisor.export import EXPORTERS
    from conveyor.supervisor.target import AUTOSCALERS, Target

    aliases = {"docker-compose": "compose", "k8s": "kubernetes", "supervisor": "supervisord"}
    kind = aliases.get(kind, kind)
    if kind not in EXPORTERS:
        raise ConfigError(f"cannot export {kind!r}: use one of {', '.join(EXPORTERS)}")
    if not app_spec:
        raise ConfigError("export needs your app: pass --app module:attribute or set CONVEYOR_APP")
    if autoscale not in AUTOSCALERS:
        raise ConfigError(f"--autoscale {autoscale!r}: use one of {', '.join(AUTOSCALERS)}")
    if log_dir is not None and kind != "supervisord":
        raise ConfigError(
            f"--log-dir is for supervisord: {kind} workers log to "
            + ("journald (journalctl -u 'conveyor-*')" if kind == "systemd" else "stdout")
        )
    if install and kind != "supervisord":
        raise ConfigError(f"--install is for supervisord; see docs/deployment.md for {kind}")
    given = [
        n
        for n, v in (("--dry-run", dry_run), ("--conf-dir", conf_dir), ("--ctl-config", ctl_config))
        if v
    ]
    if given and not install:
        raise ConfigError(
            f"{' and '.join(given)} only with --install: add --install, or leave "
            + ("them out" if len(given) > 1 else "it out")
        )
    if kind == "kubernetes" and user is not None and not user.isdigit():
        raise ConfigError(
            f"--user {user!r}: Kubernetes takes a numeric UID (runAsUser), e.g. --user 1000"
        )
    local = kind in ("supervisord", "systemd")
    target = Target(
        app=app_spec,
        program=_program(venv, python, program, local=local),
        workdir=workdir or os.getcwd(),
        user=_user(user, workdir or os.getcwd()) if local else user,
        log_dir=log_dir,
        env_file=env_file,
        image=image,
        secret_name=secret_name,
        metrics_port=metrics_port,
        autoscale=autoscale,
        prometheus=prometheus,
    )
    files = EXPORTERS[kind](load_pools().resolve(list(pools or [])), target)
    if install:
        raise typer.Exit(_install(files["conveyor.conf"], target, conf_dir, ctl_config, dry_run))
    _write(kind, files, out_dir, as_json=as_json)


def _program(
    venv: str | None, python: str | None, program: str | None, *, local: bool
) -> tuple[str, ...]:
    from conveyor.errors import ConfigError

    given = [
        (n, v) for n, v in (("--venv", venv), ("--python", python), ("--command", program)) if v
    ]
    if len(given) > 1:
        raise ConfigError(f"{' and '.join(n for n, _ in given)}: give one of them")
    if venv:
        return (str(Path(venv) / "bin" / "conveyor"),)
    if python:
        return (python, "-m", "conveyor")
    if program:
        words = shlex.split(program)
        if not words:
            raise ConfigError("--command is empty: give the command that runs conveyor")
        return tuple(words)
    if not local:
        return ("conveyor",)
    # This machine's own: the conveyor beside the running Python.
    beside = Path(sys.executable).parent / "conveyor"
    return (str(beside),) if beside.exists() else (sys.executable, "-m", "conveyor")


def _user(user: str | None, workdir: str) -> str | None:
    """``--user``, else who owns the working directory, else who exports; never root
    unless asked: with nobody else to name, no user line (and a warning)."""
    if user is not None:
        return user
    import pwd

    try:
        owner: str | None = pwd.getpwuid(os.stat(workdir).st_uid).pw_name
    except (OSError, KeyError):
        owner = None
    for candidate in (owner, getpass.getuser()):
        if candidate and candidate != "root":
            return candidate
    err.print(
        "warning: the workers will run as whoever runs the process manager (root for a "
        "system one): pass --user NAME, the account that owns the app",
        highlight=False,
        markup=False,
    )
    return None


def _install(
    text: str, target: Target, conf_dir: Path | None, ctl_config: Path | None, dry_run: bool
) -> int:
    from conveyor.supervisor.install import carry_out, plan

    steps = plan(
        text, conf_dir=conf_dir, ctl_config=ctl_config, log_dir=target.log_dir, user=target.user
    )
    if dry_run:
        for line in steps.describe():
            out.print(line, highlight=False, markup=False)
        return 0
    return carry_out(steps, lambda line: out.print(line, highlight=False, markup=False))


def _write(kind: str, files: dict[str, str], out_dir: Path | None, *, as_json: bool) -> None:
    if out_dir is not None:
        from conveyor.errors import ConfigError

        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            for name, text in files.items():
                (out_dir / name).write_text(text)
        except OSError as exc:
            raise ConfigError(
                f"--out {out_dir}: cannot write {exc.filename or out_dir}: {exc.strerror}; "
                "choose a directory you can write to"
            ) from None
    if as_json:
        where = {name: None if out_dir is None else str(out_dir / name) for name in files}
        listed = [{"name": n, "path": where[n], "text": t} for n, t in files.items()]
        print_json({"kind": kind, "files": listed})
        return
    if out_dir is None:
        for name, text in files.items():
            if len(files) > 1:
                sys.stdout.write(f"# ==> {name} <==\n")
            sys.stdout.write(text + ("\n" if len(files) > 1 else ""))
        return
    for name in files:
        out.print(f"wrote {out_dir / name}", highlight=False)
    if kind == "systemd":
        err.print(
            f"install: copy them to /etc/systemd/system/, then systemctl daemon-reload && "
            f"{_enable_hint(files)}",
            highlight=False,
            markup=False,
        )


def _enable_hint(files: dict[str, str]) -> str:
    for line in files.get("conveyor.target", "").splitlines():
        if line.startswith("# Enable: "):
            return line.removeprefix("# Enable: ")
    return "systemctl daemon-reload"
