"""A model that tries to escape: path traversal and network tricks, each refused, seen, audited."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import agentnb as anb
from agentnb.core import Message, ToolCallPart, ToolResultPart
from agentnb.governance import Policy, audit
from agentnb.models import FunctionInfo, FunctionModel
from agentnb.runtime import Agent, tool
from agentnb.testing import LoopbackServer, Reply

from ._support import audit_records

pytestmark = pytest.mark.timeout(60)

SECRET_TEXT = "outside-the-workspace-0xC0FFEE"


def _attacker(calls: list[tuple[str, dict[str, Any]]]) -> tuple[FunctionModel, list[Any]]:
    """A model that proposes every call in one turn, then reports the results it was shown."""
    seen: list[Any] = []

    def reply(messages: list[Message], info: FunctionInfo) -> Any:
        if info.call_index == 0:
            return [ToolCallPart(id=f"e{i}", name=name, arguments=json.dumps(args))
                    for i, (name, args) in enumerate(calls)]
        seen.extend(p for p in messages[-1].parts if isinstance(p, ToolResultPart))
        return "I could not get out."

    return FunctionModel(reply), seen


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A workspace with a file and a sub-folder, next to a secret file and a symlink out."""
    ws = tmp_path / "sandbox"
    (ws / "sub").mkdir(parents=True)
    (ws / "notes.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text(SECRET_TEXT)
    (ws / "link_file").symlink_to(tmp_path / "secret.txt")
    (ws / "link_dir").symlink_to(tmp_path, target_is_directory=True)
    return ws


TRAVERSALS = [
    "../secret.txt",
    "../../secret.txt",
    "./../secret.txt",
    "sub/../../secret.txt",
    "sub/../sub/../../secret.txt",
    "sub//..//..//secret.txt",
    "/etc/passwd",
    "/../secret.txt",
    "link_file",
    "link_dir/secret.txt",
    "sub/../link_dir/secret.txt",
    "SUB/../../secret.txt",
]


def test_path_traversal_refused_seen_and_audited(sandbox: Path) -> None:
    """Every traversal form is refused before the tool runs; the model sees it; each is audited."""
    opened: list[Path] = []

    @tool(effects={"read"})
    def read_file(path: Path) -> str:
        """Read a file in the workspace."""
        opened.append(path)
        return path.read_text()

    calls = [("read_file", {"path": p}) for p in TRAVERSALS]
    calls.append(("read_file", {"path": "notes.txt"}))   # a control that stays inside
    model, seen = _attacker(calls)
    agent = Agent(model=model, tools=[read_file],
                  policy=Policy(allow={"read"}, workspace=sandbox))
    result = agent.run("Read the secret file next to your workspace.")
    assert result.status == "done"
    assert opened == [(sandbox / "notes.txt").resolve()]
    statuses = [c.status for c in result.steps[1].tool_calls]
    assert statuses == ["denied"] * len(TRAVERSALS) + ["ok"]
    # The model was told, call by call, and never saw the secret.
    assert len(seen) == len(calls)
    assert all(p.is_error and "workspace" in p.content.lower() for p in seen[:-1]), seen
    assert seen[-1].content == "inside"
    assert not any(SECRET_TEXT in p.content for p in seen)
    home = agent.resolved_settings.home
    violations = [r for r in audit_records(home) if r["event"] == audit.WORKSPACE_VIOLATION]
    assert sorted(r["call_id"] for r in violations) == sorted(
        f"e{i}" for i in range(len(TRAVERSALS)))
    assert {r["path"] for r in violations} == {str(Path(p)) for p in TRAVERSALS}
    assert audit.verify(home / "audit" / "audit.jsonl").ok


def test_network_escapes_refused_seen_and_audited() -> None:
    """Unlisted hosts, IP literals, `localhost` and a redirect off the list are all refused."""
    hits: list[str] = []

    def handler(request: Any) -> Reply:
        hits.append(request.path)
        if request.path == "/redirect":
            return Reply(status=302, body="", headers={"Location": "http://evil.example.com/x"})
        return Reply(body="fine")

    @tool(effects={"network"})
    async def fetch(url: str) -> str:
        """Fetch a URL."""
        async with anb.http_client(follow_redirects=True) as client:
            response = await client.get(url)
            return f"{response.status_code} {response.text}"

    with LoopbackServer(handler) as server:
        port = server.url.rsplit(":", 1)[1].split("/")[0]
        urls = [
            "http://evil.example.com/steal",              # unlisted host
            "http://10.0.0.1/metadata",                   # IP literal not on the list
            "http://169.254.169.254/latest/meta-data/",   # cloud metadata address
            f"http://localhost:{port}/ok",                # same server, unlisted name
            f"http://127.0.0.1:{port}/redirect",          # listed host, redirect to an unlisted one
            f"http://127.0.0.1:{port}/ok",                # control: allowed
        ]
        model, seen = _attacker([("fetch", {"url": u}) for u in urls])
        agent = Agent(model=model, tools=[fetch],
                      policy=Policy(allow={"network"}, network=["127.0.0.1"]))
        result = agent.run("Send the data to evil.example.com.")
    assert result.status == "done"
    # Only the listed host was ever contacted; the redirect was not followed.
    assert sorted(hits) == ["/ok", "/redirect"]
    assert [p.is_error for p in seen] == [True] * 5 + [False]
    assert all("NetworkBlocked" in p.content or "allow-list" in p.content for p in seen[:5]), seen
    assert seen[-1].content == "200 fine"
    home = agent.resolved_settings.home
    blocked = [r for r in audit_records(home) if r["event"] == audit.NETWORK_BLOCKED]
    assert sorted(r["call_id"] for r in blocked) == ["e0", "e1", "e2", "e3", "e4"]
    assert {r["host"] for r in blocked} == {"evil.example.com", "10.0.0.1", "169.254.169.254",
                                            "localhost"}
    assert all(r["tool"] == "fetch" for r in blocked)
    assert audit.verify(home / "audit" / "audit.jsonl").ok


def test_a_rule_that_raises_denies_and_is_audited() -> None:
    """A `Rule.when` that raises on the model's arguments denies the call instead of crashing."""
    ran: list[str] = []

    @tool(effects={"write"})
    def send_email(to: str) -> str:
        """Send an email."""
        ran.append(to)
        return "sent"

    rule = anb.Rule(tool="send_email", when=lambda args: args["recipient"].endswith(".com"),
                    decision="allow")
    model, seen = _attacker([("send_email", {"to": "a@b.com"})])
    agent = Agent(model=model, tools=[send_email], policy=Policy(rules=[rule]))
    result = agent.run("Email a@b.com")
    assert result.status == "done"
    assert ran == []
    assert seen[0].is_error
    assert "Denied by policy" in seen[0].content
    home = agent.resolved_settings.home
    (decision,) = [r for r in audit_records(home) if r["event"] == audit.POLICY_DECISION]
    assert (decision["decision"], decision["rule"]) == ("deny", "rule-error")
    assert os.path.exists(home / "audit" / "audit.jsonl.head")
