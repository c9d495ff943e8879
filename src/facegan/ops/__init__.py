"""User-facing operations. Each op is one small module honouring the ``Operation`` contract and is
found through the registry; the CLI, REST API and web page are generated from it."""
from .base import Operation, OpOption, OpResult, get_op, list_ops, register_op

__all__ = ["Operation", "OpOption", "OpResult", "get_op", "list_ops", "register_op"]
