"""`python -m chat_server`: the only place that monkey-patches and runs the WSGI server."""

from . import runtime  # first: filters eventlet's deprecation warning, then imports it

runtime.monkey_patch()

import gc  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from .app import check_connections, create_app  # noqa: E402
from .config import Config, ConfigError, load, setup_logging  # noqa: E402

logger = logging.getLogger("chat_server")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["admin"]:  # operators' commands (chat_server/admin.py)
        from . import admin

        return admin.main(args[1:])
    if args[:1] == ["export"]:  # chat_server/export.py
        from . import export

        return export.main(args[1:])
    if args[:1] == ["bot"]:  # bot accounts (chat_server/bot_command.py)
        from . import bot_command

        return bot_command.main(args[1:])
    try:
        config = load(args)
    except ConfigError as error:
        sys.stderr.write(f"chat_server: bad setting: {error}\n")
        return 2
    setup_logging(config.log_level, config.log_format)
    if config.check_config:
        return check(config)
    try:
        app = create_app(config)
    except Exception as error:
        sys.stderr.write(f"chat_server: cannot start: {error.__class__.__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}\n")
        return 1
    try:
        listener = runtime.listen(config.host, config.port)
    except OSError as error:
        sys.stderr.write(f"chat_server: cannot listen on {config.host}:{config.port}: "
                         f"{error.strerror or error}\n")
        return 1
    host, port = listener.getsockname()[:2]
    stop: list[int] = []  # a signal handler may only set a flag; a greenlet acts on it
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: stop.append(number))
    tune_gc()
    server = runtime.spawn(runtime.serve, listener, app.wsgi, config.max_connections,
                           app.http_protocol)
    logger.info("Serving on http://%s:%d", host, port)
    while not stop and not server.dead:
        runtime.sleep(0.1)
    logger.info("stopping (%s)", signal.Signals(stop[0]).name if stop else "server ended")
    # Stopping eventlet's WSGI server would cut idle connections at once (websockets
    # included), so it keeps running while the app drains and refuses newcomers.
    app.shutdown(grace=config.shutdown_grace)
    server.kill()
    listener.close()
    logger.info("stopped")
    return 0


def tune_gc() -> None:
    """A full collection walks every suspended greenlet's stack: with 1,000 connections
    each one stopped the event loop for 100-150 ms, every few seconds, for every client.
    What start-up made lives as long as the process, so it leaves the collector's view;
    and young collections run on 20,000 new objects instead of 700, so far fewer
    short-lived objects are promoted and full collections become rare (bench/README.md).

    A middle-generation pass walks what the young passes promoted since the last one: with
    50 young passes between two, a connect storm's new sessions (some 100 objects each)
    piled up into one pass of 458 ms at 10,000 clients. Every 5 young passes keeps a pass
    near a tenth of that for the same total work (each object is walked there once
    either way), and counting 1,000 of them (not 100) before a full collection keeps
    full collections exactly as rare as before: every 5,000 young passes."""
    gc.freeze()
    gc.set_threshold(20_000, 5, 1_000)


def check(config: Config) -> int:
    """For deploy pipelines: can this configuration serve? One line either way."""
    problems = check_connections(config)
    if problems:
        sys.stderr.write("chat_server: config check failed: " + "; ".join(problems) + "\n")
        return 1
    sys.stdout.write("chat_server: config ok (store"
                     + (", redis" if config.redis_url else "") + " reachable)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
