"""``conveyor export``: write the configured pools as supervisord, systemd, docker-compose or
Kubernetes configs (see docs/deployment.md)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.common import AppOption, JsonOption, err, handle_errors, out, print_json


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
    image: Annotated[str, typer.Option(help="compose/kubernetes: the image.")] = "my-app:latest",
    workdir: Annotated[
        str | None, typer.Option(help="supervisord/systemd: working directory (default: here).")
    ] = None,
    secret_name: Annotated[
        str,
        typer.Option("--secret", help="kubernetes: the Secret with the backend URL (key 'url')."),
    ] = "conveyor",  # noqa: S107 - a Secret's name, not a secret
    as_json: JsonOption = False,
) -> None:
    """Write the pools as process-manager configs: one program, template unit, service or
    Deployment per pool, with its process count and a stop timeout longer than the
    worker's grace period. The backend URL is read from the environment, never written.

    ``--json``: ``{"kind": ..., "files": [{"name", "path", "text"}]}``, ``path`` being
    where the file was written (``null`` without ``--out``).
    """
    from conveyor.errors import ConfigError
    from conveyor.supervisor.config import load_pools
    from conveyor.supervisor.export import EXPORTERS, Target

    aliases = {"docker-compose": "compose", "k8s": "kubernetes", "supervisor": "supervisord"}
    kind = aliases.get(kind, kind)
    if kind not in EXPORTERS:
        raise ConfigError(f"cannot export {kind!r}: use one of {', '.join(EXPORTERS)}")
    if not app_spec:
        raise ConfigError("export needs your app: pass --app module:attribute or set CONVEYOR_APP")
    local = kind in ("supervisord", "systemd")
    executable = "conveyor"
    if local:
        beside = Path(sys.executable).parent / "conveyor"
        executable = str(beside) if beside.exists() else shutil.which("conveyor") or "conveyor"
    target = Target(
        app=app_spec,
        executable=executable,
        workdir=workdir or os.getcwd(),
        image=image,
        secret_name=secret_name,
    )
    files = EXPORTERS[kind](load_pools().resolve(list(pools or [])), target)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out_dir / name).write_text(text)
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
            f"install: copy them to /etc/systemd/system/, then {_enable_hint(files)}",
            highlight=False,
            markup=False,
        )


def _enable_hint(files: dict[str, str]) -> str:
    for line in files.get("conveyor.target", "").splitlines():
        if line.startswith("# Enable: "):
            return line.removeprefix("# Enable: ")
    return "systemctl daemon-reload"
