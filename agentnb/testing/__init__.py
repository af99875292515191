"""The public test kit: scripted models, loopback fake provider servers. Library code never imports it."""

from agentnb.models import FunctionInfo, FunctionModel
from agentnb.testing._server import LoopbackServer, RecordedRequest, Reply

__all__ = ["FunctionInfo", "FunctionModel", "LoopbackServer", "RecordedRequest", "Reply"]
