"""``facegan serve``: the web page and the REST API on one local server."""
from __future__ import annotations

import click

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _log_config(level: str) -> dict:
    """uvicorn's own messages plus facegan's one-line access log; uvicorn's access log is off
    (it would log query strings and client addresses)."""
    fmt = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"plain": fmt},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                                "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "facegan": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
        },
    }


@click.command("serve", epilog="""\b
Every limit can also be set with an environment variable FACEGAN_SERVE_<NAME>, e.g.
FACEGAN_SERVE_CONCURRENCY=2, FACEGAN_SERVE_MAX_UPLOAD_BYTES=10000000, FACEGAN_SERVE_RATE_LIMIT=0.
\b
Examples:
  facegan serve                                   http://127.0.0.1:7860 (page), /docs (REST API)
  facegan serve --port 8000 --concurrency 2
  curl -F file=@photo.jpg -F strength=2 http://127.0.0.1:7860/api/run/blur
  curl -F file=@photo.jpg http://127.0.0.1:7860/api/run/swap-gender/image -o out.png""")
@click.option("--host", default=None, help="address to bind [default: 127.0.0.1, this machine only]")
@click.option("--port", type=int, default=None, help="port [default: 7860]")
@click.option("--max-upload-mb", type=float, default=None, help="largest upload in MB (413 beyond) [default: 20]")
@click.option("--max-pixels", type=int, default=None, help="largest image in pixels (413 beyond) [default: 40000000]")
@click.option("--concurrency", type=int, default=None, help="operations running at once [default: 1]")
@click.option("--queue-size", type=int, default=None,
              help="requests allowed to wait; beyond that 503 busy at once [default: 8]")
@click.option("--timeout", "timeout_s", type=float, default=None, help="seconds per request (504 beyond) [default: 120]")
@click.option("--rate-limit", type=float, default=None,
              help="API runs per minute per client, 0 = off (429 beyond) [default: 60]")
@click.option("--rate-burst", type=int, default=None, help="runs a client may make at once [default: 10]")
@click.option("--no-page", is_flag=True, help="REST API only, no web page")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
def command(host, port, max_upload_mb, max_pixels, concurrency, queue_size, timeout_s, rate_limit, rate_burst,
            no_page, log_level):
    """Start the web page (/) and the REST API (/api, documented at /docs) on one local server.

    Photos are processed in memory: uploads and results are never written to disk, and only method,
    path, status, duration and sizes are logged."""
    import uvicorn

    from ..server import ServerConfig, create_app

    cfg = ServerConfig.from_env(
        host=host, port=port, max_pixels=max_pixels, concurrency=concurrency, queue_size=queue_size,
        timeout_s=timeout_s, rate_limit=rate_limit, rate_burst=rate_burst,
        max_upload_bytes=None if max_upload_mb is None else int(max_upload_mb * 1024 * 1024),
        page=False if no_page else None)
    if cfg.host not in _LOOPBACK:
        click.echo(f"warning: binding {cfg.host}: the server is reachable from other machines and has "
                   "no authentication", err=True)
    app = create_app(cfg)
    shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    click.echo(f"facegan: page http://{shown}:{cfg.port}/  API docs http://{shown}:{cfg.port}/docs", err=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, access_log=False, log_config=_log_config(log_level),
                server_header=False, timeout_graceful_shutdown=5)
