"""The `personae` command: serve, migrate, user."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from personae.cli_models import embedded_lines, model_option, models_app
from personae.errors import AppError
from personae.exit_deadline import ExitDeadline
from personae.logs import configure_logging, json_wanted, serving_lines
from personae.settings import Settings, load_settings

T = TypeVar("T")

# A stop ends within the grace plus 5 s: the forced exit comes a second early, so
# the kernel's backstop and the exit itself fit inside the bound.
_FORCED_EXIT_AFTER_GRACE_S = 4.0
# How long an idle HTTP connection stays open (see `serve`).
_KEEP_ALIVE_S = 75

app = typer.Typer(help="Personae: create AI characters and chat with them.", no_args_is_help=True)
user_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(models_app, name="models")
incident_app = typer.Typer(help="Incidents on the status page.", no_args_is_help=True)
app.add_typer(incident_app, name="incident")

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the database and models live.")
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        help="A model from `personae models list` (pulled), a GGUF file to run embedded, "
        "or the URL of an OpenAI-compatible server."
    ),
]
BackendOption = Annotated[
    list[str] | None,
    typer.Option(help="NAME=URL[,slots=N][,role=fallback][,model=M][,context=N] (repeatable)."),
]


def _settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    values = {key: value for key, value in overrides.items() if value is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        return load_settings(**values)
    except AppError as error:
        _fail(error.detail)


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _run(make: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine, turning an AppError into a clear message and exit code 2."""
    try:
        return asyncio.run(make())  # type: ignore[arg-type]
    except AppError as error:
        _fail(error.detail)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    data_dir: DataDirOption = None,
    model: ModelOption = None,
    backend: BackendOption = None,
    role: Annotated[
        str,
        typer.Option(help="all (one process), or api (HTTP only; `personae worker` writes)."),
    ] = "all",
) -> None:
    """Serve the API and the web app (SQLite and the embedded model by default)."""
    if role not in ("all", "api"):
        _fail(f"unknown role '{role}': choose all or api (workers run `personae worker`)")
    _serve_role(role, host, port, data_dir, model, backend)


@app.command()
def worker(
    host: Annotated[str | None, typer.Option(help="Address of the health port.")] = None,
    port: Annotated[int | None, typer.Option(help="The health and metrics port.")] = None,
    data_dir: DataDirOption = None,
    model: ModelOption = None,
    backend: BackendOption = None,
) -> None:
    """Write replies (and run the cluster duties when this process leads); the port
    answers /healthz, /readyz and /metrics only. Run `personae serve --role api` for HTTP."""
    _serve_role("worker", host, port, data_dir, model, backend)


def _serve_role(
    role: str,
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    model: str | None,
    backend: list[str] | None,
) -> None:
    import uvicorn

    from personae.api.request_timeouts import head_timeout_protocol
    from personae.app import create_app

    model_options: dict[str, Any] = {"role": role}
    if model:
        try:
            model_options.update(model_option(model, _settings(data_dir).data_dir))
        except AppError as error:
            _fail(error.detail)
    if backend:
        model_options["backends"] = backend
    settings = _settings(data_dir, host=host, port=port, **model_options)
    configure_logging(
        settings.log_level, json_lines=json_wanted(settings.log_format, settings.log_json)
    )
    from personae.llm.factory import configured_backends, resolve_model_path

    try:
        fleet = configured_backends(settings)
    except AppError as error:
        _fail(error.detail)
    if not fleet and role != "api":
        try:  # before serving: fetch the model on first start, refuse a damaged file
            resolve_model_path(settings)
        except AppError as error:
            _fail(error.detail)
    _fetch_embedding_model(settings)
    if role != "worker":
        _fetch_voice_files(settings)
    try:
        application = create_app(settings)
    except AppError as error:
        _fail(error.detail)
    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
        # Longer than a reverse proxy keeps an idle connection (nginx 60 s, cloud load
        # balancers 60 s): otherwise the proxy may send a request on a connection this
        # process is closing, and a POST there is a 502 (a proxy does not retry it).
        timeout_keep_alive=_KEEP_ALIVE_S,
        # uvicorn bounds no request head: this protocol closes a connection whose head
        # takes longer than PERSONAE_REQUEST_HEAD_TIMEOUT_S (slowloris).
        http=head_timeout_protocol(settings.request_head_timeout_s),
        proxy_headers=False,
    )
    container = application.state.container
    deadline = ExitDeadline(settings.graceful_shutdown_s + _FORCED_EXIT_AFTER_GRACE_S)

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Whatever hangs from here on, the process ends within its bound.
            deadline.arm()
            # Streams end at once (clients reconnect elsewhere); running replies get
            # the grace period in the application's shutdown.
            container.begin_shutdown()
            super().handle_exit(sig, frame)
            # A graceful stop is a clean exit (status 0): do not die by the signal afterwards.
            self._captured_signals.clear()

        async def startup(self, sockets: list[Any] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # only now does the port accept connections
                bound = self.servers[0].sockets[0].getsockname()
                for line in serving_lines(settings.host, int(bound[1])):
                    typer.echo(line, err=True)

    deadline.start()
    server = _Server(config)
    server.run()
    if server.started:
        _exit_after_clean_stop()


def _exit_after_clean_stop() -> None:
    """Everything is stored and closed. What is left is the interpreter's own exit,
    which joins worker threads (a prompt being built, an embedding) and library
    destructors: under load it outlasted the stop's bound. None of it needs doing."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _fetch_embedding_model(settings: Settings) -> None:
    """Fetch MiniLM on first start. With `auto`, failing only costs recall by meaning
    (lexical recall stands in); with `minilm` asked for, it stops the start."""
    from personae.llm.embedding_files import ensure_embedding_model

    def progress(line: str) -> None:
        typer.echo(f"personae: {line}", err=True)

    try:
        ensure_embedding_model(settings, progress=progress)
    except AppError as error:
        if settings.embedding_model == "minilm":
            _fail(error.detail)
        logging.getLogger("personae.cli").warning(
            "recall by meaning is off (lexical recall is used): %s", error.detail
        )


def _fetch_voice_files(settings: Settings) -> None:
    """With the `[voice]` extra, fetch the voice files on first start (about 240 MB).
    Failing only costs voice: its routes then say which `models pull` would fix it."""
    from personae.voice import files
    from personae.voice.base import voice_installed

    if settings.voice == "off" or not voice_installed():
        return
    models_dir = settings.voice_dir or settings.data_dir / "models"
    for name in files.CATALOGUE:
        try:
            files.pull(
                name, models_dir, progress=lambda line: typer.echo(f"personae: {line}", err=True)
            )
        except AppError as error:
            logging.getLogger("personae.cli").warning(
                "voice files %s are missing: %s", name, error.detail
            )


@app.command()
def migrate(data_dir: DataDirOption = None) -> None:
    """Bring the database schema up to date."""
    from personae.storage import migrate as migrations
    from personae.storage.db import Database

    settings = _settings(data_dir)

    async def _upgrade() -> str | None:
        database = Database(settings.resolved_database_url)
        try:
            await migrations.upgrade(database)
            return await migrations.current_revision(database)
        finally:
            await database.dispose()

    revision = _run(_upgrade)
    typer.echo(f"database is at revision {revision}")


RoleArgument = Annotated[str, typer.Argument(help="user, plus, moderator or admin")]


def _check_role(role: str) -> Any:
    from personae.services.accounts import ROLES

    if role not in ROLES:
        _fail(f"unknown role '{role}'; choose one of {', '.join(ROLES)}")
    return role


@app.command()
def backends(data_dir: DataDirOption = None) -> None:
    """List the configured backends and whether each answers its health check now."""
    from personae.llm.factory import configured_backends, open_backend

    settings = _settings(data_dir)
    try:
        specs = configured_backends(settings)
    except AppError as error:
        _fail(error.detail)
    if not specs:
        for line in embedded_lines(settings):
            typer.echo(line)
        return

    async def _check() -> list[bool]:
        opened = [open_backend(spec, settings) for spec in specs]
        try:
            return list(await asyncio.gather(*(b.provider.health() for b in opened)))
        finally:
            for backend in opened:
                await backend.close()

    for spec, healthy in zip(specs, _run(_check), strict=True):
        state = "healthy" if healthy else "DOWN"
        typer.echo(
            f"{spec.name:<16} {state:<8} {spec.role:<8} slots={spec.slots:<4} "
            f"context={spec.context_length:<6} model={spec.model} {spec.url}"
        )


@app.command("simulate-backend")
def simulate_backend(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8100,
    slots: Annotated[int, typer.Option(help="Replies written at once.")] = 4,
    tokens_per_second: Annotated[float, typer.Option(help="Speed of each reply.")] = 50.0,
    first_token_ms: Annotated[float, typer.Option(help="Delay before the first token.")] = 100.0,
    fail_rate: Annotated[float, typer.Option(help="Share of requests answered 500.")] = 0.0,
    loop: Annotated[bool, typer.Option(help="Repeat one phrase forever.")] = False,
    name: Annotated[str, typer.Option(help="Model name it reports.")] = "simulated",
) -> None:
    """Run a SIMULATED OpenAI-compatible backend (for load and failure tests)."""
    import uvicorn

    from personae.llm.simulated import SimulationOptions, simulated_backend_app

    options = SimulationOptions(
        name=name,
        slots=slots,
        tokens_per_second=tokens_per_second,
        first_token_ms=first_token_ms,
        fail_rate=fail_rate,
        loop=loop,
    )
    typer.echo(f"SIMULATED backend '{name}' on http://127.0.0.1:{port} (not a model)", err=True)
    uvicorn.run(simulated_backend_app(options), host="127.0.0.1", port=port, log_level="warning")


@app.command()
def capacity(
    growth: Annotated[str, typer.Option(help="Traffic growth, like 15%/month.")] = "0%/month",
    months: Annotated[int, typer.Option(min=0, max=120, help="Months to plan ahead.")] = 6,
    target_wait: Annotated[str, typer.Option(help="The p95 wait to stay under.")] = "10s",
    days: Annotated[float, typer.Option(help="Days of recorded traffic to read.")] = 7.0,
    slots: Annotated[
        int | None, typer.Option(min=1, help="Today's slots (default: the configured ones).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Backend slots that keep the p95 wait under a target at the busiest hour, now and
    each month ahead, from the traffic recorded in the database (M/M/c, Erlang C)."""
    from personae.capacity_report import plan_as_json, read_plan, render_plan

    settings = _settings(data_dir, seed_demo=False)
    plan = _run(
        lambda: read_plan(
            settings, growth=growth, target_wait=target_wait, days=days, months=months, slots=slots
        )
    )
    typer.echo(plan_as_json(plan) if as_json else "\n".join(render_plan(plan)))


@app.command()
def chat(
    character: Annotated[str | None, typer.Argument(help="A character's id or exact name.")] = None,
    room: Annotated[
        str | None,
        typer.Option(help="A group room instead: its id, or an invite link or token to accept."),
    ] = None,
    url: Annotated[str, typer.Option(help="The server.")] = "http://127.0.0.1:8000",
    new: Annotated[
        bool, typer.Option("--new", help="Start a fresh chat instead of resuming the last one.")
    ] = False,
    username: Annotated[str | None, typer.Option(envvar="PERSONAE_USERNAME")] = None,
    password: Annotated[str | None, typer.Option(envvar="PERSONAE_PASSWORD")] = None,
    token: Annotated[
        str | None, typer.Option(envvar="PERSONAE_TOKEN", help="An API token.")
    ] = None,
) -> None:
    """Chat with a character in the terminal, resuming your last chat with it; replies
    stream as they are written. With --room, join a group room (by id or invite).
    /help in the chat lists its commands."""
    from personae.terminal import Credentials, run_chat
    from personae.terminal_room import run_room

    if (character is None) == (room is None):
        typer.echo("personae: give a character, or --room ROOM (not both)", err=True)
        raise typer.Exit(code=2)
    given = Credentials(username=username, password=password, token=token)
    try:
        if room is not None:
            code = asyncio.run(run_room(url, room, given))
        else:
            assert character is not None
            code = asyncio.run(run_chat(url, character, given, new=new))
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code=code)


@user_app.command("create")
def user_create(
    username: str,
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="PERSONAE_NEW_USER_PASSWORD",
            help="Asked for when not given.",
        ),
    ],
    role: Annotated[str, typer.Option(help="user, plus, moderator or admin")] = "user",
    data_dir: DataDirOption = None,
) -> None:
    """Create an account (for example the first admin)."""
    from personae.container import build_container

    settings = _settings(data_dir, seed_demo=False)
    checked_role = _check_role(role)

    async def _create() -> str:
        container = build_container(settings)
        try:
            await container.start(run_jobs=False)
            user = await container.accounts.register(username, password, role=checked_role)
            return user.username
        finally:
            await container.aclose()

    typer.echo(f"created {role} '{_run(_create)}'")


@user_app.command("set-role")
def user_set_role(username: str, role: RoleArgument, data_dir: DataDirOption = None) -> None:
    """Give an account another role."""
    from personae.container import build_container

    settings = _settings(data_dir, seed_demo=False)
    checked_role = _check_role(role)

    async def _set() -> str:
        container = build_container(settings)
        try:
            await container.start(run_jobs=False)
            user = await container.accounts.set_role(username, checked_role)
            return user.role
        finally:
            await container.aclose()

    typer.echo(f"'{username}' is now {_run(_set)}")


def _with_container(data_dir: Path | None, use: Callable[[Any], Awaitable[T]]) -> T:
    """Run `use(container)` against the database, without the model or the scheduler."""
    from personae.container import build_container

    settings = _settings(data_dir, seed_demo=False)

    async def _go() -> T:
        container = build_container(settings)
        try:
            await container.start(run_jobs=False)
            return await use(container)
        finally:
            await container.aclose()

    return _run(_go)


def _incident_line(view: Any) -> str:
    found = view.incident
    kind = "auto" if found.automatic else "operator"
    return f"{found.id}  {found.status:<13} {found.impact:<8} {kind:<8} {found.title}"


ComponentOption = Annotated[
    list[str] | None, typer.Option("--component", help="An affected component id (repeatable).")
]


@incident_app.command("open")
def incident_open(
    title: str,
    body: Annotated[str, typer.Option(help="The first update, in words for users.")],
    impact: Annotated[str, typer.Option(help="none, minor, major or critical")] = "minor",
    status: Annotated[str, typer.Option(help="investigating, identified or monitoring")] = (
        "investigating"
    ),
    component: ComponentOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Open an incident; prints its id."""
    view = _with_container(
        data_dir,
        lambda c: c.incidents.open(
            title, body, status=status, impact=impact, components=component or []
        ),
    )
    typer.echo(view.incident.id)


@incident_app.command("update")
def incident_update(
    incident_id: str,
    status: Annotated[str, typer.Argument(help="investigating ... resolved, postmortem")],
    body: Annotated[str, typer.Option(help="What users should know now.")],
    impact: Annotated[str | None, typer.Option(help="Change the impact.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Post an update, moving the incident to STATUS."""
    view = _with_container(
        data_dir, lambda c: c.incidents.post_update(incident_id, status, body, impact=impact)
    )
    typer.echo(_incident_line(view))


@incident_app.command("resolve")
def incident_resolve(
    incident_id: str,
    body: Annotated[str, typer.Option(help="The closing words.")] = (
        "This incident is resolved. Thank you for your patience."
    ),
    data_dir: DataDirOption = None,
) -> None:
    """Resolve an incident."""
    view = _with_container(data_dir, lambda c: c.incidents.resolve(incident_id, body))
    typer.echo(_incident_line(view))


@incident_app.command("list")
def incident_list(
    all_incidents: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Incidents, newest first (unresolved only unless --all)."""
    views = _with_container(
        data_dir, lambda c: c.incidents.list_incidents(unresolved_only=not all_incidents)
    )
    for view in views:
        typer.echo(_incident_line(view))
    if not views:
        typer.echo("no incidents", err=True)


def main() -> None:
    app(prog_name="personae")


if __name__ == "__main__":
    main()
