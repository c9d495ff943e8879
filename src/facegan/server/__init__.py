"""``facegan serve``: one local server with the REST API (``/api``, docs at ``/docs``) and the web
page (``/``), both generated from the operation registry. Photos are processed in memory."""
from .api import create_api, create_app
from .config import ServerConfig
from .core import ServerContext

__all__ = ["ServerConfig", "ServerContext", "create_api", "create_app"]
