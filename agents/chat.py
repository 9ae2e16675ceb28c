"""The agent loop: an agent answers a conversation, calling its bound tools through function
calling, at most ``agent.max_tool_rounds`` rounds, then answers without tools.

An agent with knowledge ``collections`` answers from them: with ``auto_retrieval`` the last user
message is searched first (hybrid) and the best ``retrieval_top_k`` chunks go into the prompt as
numbered sources; the model may also search itself through the built-in ``knowledge_search``
tool. Every chunk the model was shown is a citation (document, chunk, score) of the reply.

:func:`agent_respond` is an async generator of :class:`AgentEvent` (text chunks when streaming,
tool calls and their results, and one final event with the answer and the summed usage). Every
model call in it goes through the gateway, so each is metered on its own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from agents.models import Agent, Conversation, Message, Provider, ToolBinding
from agents.providers import gateway
from agents.providers.base import ChatRequest, ToolCall, Usage, estimate_prompt_tokens, estimate_tokens
from agents.providers.registry import Target, target_for
from agents.selectors import aagent_bindings, aagent_collections, adefault_provider, aprovider
from usage.services import CallContext

TOOL_RESULT_LIMIT = 16_000  # characters of a tool's answer given back to the model


@dataclass
class AgentEvent:
    type: str  # "retrieval" | "chunk" | "tool_call" | "tool_result" | "final"
    data: Any = None


@dataclass
class AgentReply:
    content: str
    finish_reason: str
    model: str
    usage: Usage
    tool_calls: list[dict] = field(default_factory=list)
    citations: list[dict] = field(default_factory=list)


# --- knowledge ------------------------------------------------------------------------------

KNOWLEDGE_TOOL = "knowledge_search"
KNOWLEDGE_TOOL_SPEC = {
    "type": "function",
    "function": {
        "name": KNOWLEDGE_TOOL,
        "description": "Search the knowledge base for passages that answer a question. Returns numbered sources "
        "to cite as [n].",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for, in plain words."},
                "top_k": {"type": "integer", "minimum": 1, "maximum": 10, "description": "How many passages."},
            },
            "required": ["query"],
        },
    },
}
SOURCES_PROMPT = (
    "Answer from the sources below when they are relevant, and cite them as [n]. "
    "If they do not contain the answer, say so rather than guess.\n\n"
)


class _Sources:
    """The chunks shown to the model in one reply, numbered once each: its citations."""

    def __init__(self) -> None:
        self.citations: list[dict] = []
        self._numbers: dict[str, int] = {}

    def add(self, hits) -> list[tuple[int, object]]:
        numbered = []
        for hit in hits:
            key = str(hit.chunk_id)
            if key not in self._numbers:
                self._numbers[key] = len(self.citations) + 1
                self.citations.append({"index": self._numbers[key], **hit.citation()})
            numbered.append((self._numbers[key], hit))
        return numbered


def _sources_text(numbered) -> str:
    return "\n\n".join(f"[{n}] {hit.document_title}\n{hit.text}" for n, hit in numbered)


def _last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


async def _search(ctx: CallContext, collections: list, query: str, top_k: int):
    from knowledge.search import Query, asearch

    return await asearch(ctx, collections, Query(text=query[:4000], top_k=top_k, mode="hybrid"))


async def _knowledge_tool(ctx: CallContext, collections: list, sources: _Sources, arguments: str) -> dict:
    try:
        args = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        args = None
    if not isinstance(args, dict) or not isinstance(args.get("query"), str) or not args["query"].strip():
        return {"error": "knowledge_search needs a 'query' string."}
    top_k = args.get("top_k") if isinstance(args.get("top_k"), int) else 4
    hits = await _search(ctx, collections, args["query"], max(1, min(top_k, 10)))
    return {"results": [{"source": n, "title": h.document_title, "text": h.text} for n, h in sources.add(hits)]}


async def aprovider_target(
    *, project_id, provider: Provider | None, model: str = "", embedding: bool = False
) -> Target:
    """Resolve where a call goes: the given provider, else the project's default, else the deployment's."""
    if provider is None:
        provider = await adefault_provider(project_id)
    return target_for(provider, model, embedding=embedding)


async def aagent_target(agent: Agent) -> Target:
    provider = None
    if agent.provider_id is not None:
        provider = await aprovider(agent.project_id, agent.provider_id)
    return await aprovider_target(project_id=agent.project_id, provider=provider, model=agent.model)


def _tool_spec(binding: ToolBinding) -> dict:
    tool = binding.tool
    parameters = tool.parameters or {"type": "object", "properties": {}}
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": parameters},
    }


def _merge_tool_fragments(acc: dict[int, dict], fragments: list[dict]) -> None:
    for fragment in fragments:
        slot = acc.setdefault(fragment.get("index", 0), {"id": "", "name": "", "arguments": ""})
        slot["id"] = fragment.get("id") or slot["id"]
        function = fragment.get("function") or {}
        slot["name"] = function.get("name") or slot["name"]
        slot["arguments"] += function.get("arguments") or ""


async def _call_tool(bindings: dict[str, ToolBinding], call: ToolCall) -> dict:
    from agents.tools import tool_execute

    binding = bindings.get(call.name)
    if binding is None:
        return {"error": f"There is no tool named {call.name!r}."}
    return await tool_execute(tool=binding.tool, config=binding.config, arguments=call.arguments)


async def agent_respond(
    *,
    ctx: CallContext,
    agent: Agent,
    messages: list[dict],
    stream: bool,
    temperature: float | None = None,
    max_tokens: int | None = None,
    target: Target | None = None,
) -> AsyncIterator[AgentEvent]:
    """Run the loop over ``messages`` (the conversation so far, without the agent's instructions)."""
    target = target or await aagent_target(agent)
    bindings = {b.tool.name: b for b in await aagent_bindings(agent)}
    collections = await aagent_collections(agent)
    if collections:
        bindings.pop(KNOWLEDGE_TOOL, None)  # the built-in tool answers to that name
    tools = [_tool_spec(b) for b in bindings.values()] + ([KNOWLEDGE_TOOL_SPEC] if collections else [])
    tools = tools or None
    convo = ([{"role": "system", "content": agent.instructions}] if agent.instructions else []) + list(messages)
    total = Usage()
    traced: list[dict] = []
    sources = _Sources()
    question = _last_user_text(messages)
    if collections and agent.auto_retrieval and question.strip():
        numbered = sources.add(await _search(ctx, collections, question, agent.retrieval_top_k))
        if numbered:
            yield AgentEvent("retrieval", {"citations": list(sources.citations)})
            position = 1 if agent.instructions else 0
            convo.insert(position, {"role": "system", "content": SOURCES_PROMPT + _sources_text(numbered)})

    for round_no in range(agent.max_tool_rounds + 1):
        last_round = round_no == agent.max_tool_rounds
        request = ChatRequest(
            messages=convo,
            model=target.model,
            temperature=agent.temperature if temperature is None else temperature,
            max_tokens=max_tokens or agent.max_tokens,
            tools=None if last_round else tools,
        )
        if stream:
            parts: list[str] = []
            fragments: dict[int, dict] = {}
            finish, usage = "stop", None
            async for chunk in gateway.stream(ctx, target, request):
                if chunk.content:
                    parts.append(chunk.content)
                    yield AgentEvent("chunk", chunk.content)
                _merge_tool_fragments(fragments, chunk.tool_calls)
                finish = chunk.finish_reason or finish
                usage = chunk.usage or usage
            content = "".join(parts)
            if usage is None:  # the same estimate the gateway recorded
                usage = Usage(estimate_prompt_tokens(request.messages), estimate_tokens(content), estimated=True)
            calls = [
                ToolCall(id=f["id"] or f"call_{i}", name=f["name"], arguments=f["arguments"] or "{}")
                for i, f in sorted(fragments.items())
            ]
        else:
            result = await gateway.chat(ctx, target, request)
            content, calls, finish, usage = result.content, result.tool_calls, result.finish_reason, result.usage
        total = total + usage

        if not calls or last_round:
            reply = AgentReply(
                content=content,
                finish_reason=finish if not calls else "length",
                model=target.model,
                usage=total,
                tool_calls=traced,
                citations=sources.citations,
            )
            yield AgentEvent("final", reply)
            return

        convo.append({"role": "assistant", "content": content or None, "tool_calls": [c.as_openai() for c in calls]})
        for call in calls:
            call_data = {"id": call.id, "name": call.name, "arguments": call.arguments}
            yield AgentEvent("tool_call", call_data)
            if collections and call.name == KNOWLEDGE_TOOL:
                result = await _knowledge_tool(ctx, collections, sources, call.arguments)
            else:
                result = await _call_tool(bindings, call)
            traced.append({**call_data, "result": result})
            yield AgentEvent("tool_result", {"id": call.id, "name": call.name, "result": result})
            convo.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)[:TOOL_RESULT_LIMIT]})


async def agent_complete(**kwargs) -> AgentReply:
    """:func:`agent_respond` without streaming, to the final reply."""
    async for event in agent_respond(stream=False, **kwargs):
        if event.type == "final":
            return event.data
    raise RuntimeError("the agent loop ended without a final event")


# --- conversations --------------------------------------------------------------------------


async def conversation_history(conversation: Conversation, window: int) -> list[dict]:
    """The last ``window`` messages, oldest first, in the chat format."""
    rows = [m async for m in Message.objects.filter(conversation=conversation).order_by("-created_at", "-id")[:window]]
    history = []
    for m in reversed(rows):
        item: dict = {"role": m.role, "content": m.content}
        if m.tool_calls:
            item["tool_calls"] = m.tool_calls
        if m.tool_call_id:
            item["tool_call_id"] = m.tool_call_id
        history.append(item)
    return history


async def conversation_append(conversation: Conversation, messages: list[dict]) -> None:
    await Message.objects.abulk_create(
        [
            Message(
                project_id=conversation.project_id,
                conversation=conversation,
                role=m["role"],
                content=m.get("content") or "",
                tool_calls=m.get("tool_calls"),
                tool_call_id=m.get("tool_call_id") or "",
            )
            for m in messages
        ]
    )
