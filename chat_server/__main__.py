"""`python -m chat_server`: the only place that monkey-patches and runs the WSGI server."""

from . import runtime  # first: filters eventlet's deprecation warning, then imports it

runtime.monkey_patch()

import logging  # noqa: E402
import sys  # noqa: E402

from .app import check_connections, create_app  # noqa: E402
from .config import ConfigError, load, setup_logging  # noqa: E402

logger = logging.getLogger("chat_server")


def main(argv=None):
    try:
        config = load(argv)
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
    logger.info("Serving on http://%s:%d", host, port)
    try:
        runtime.serve(listener, app.wsgi, max_connections=config.max_connections)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        logger.info("stopped")
        app.store.close()
    return 0


def check(config):
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
