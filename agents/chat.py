"""The agent loop: an agent answers a conversation, calling its bound tools through function
calling, at most ``agent.max_tool_rounds`` rounds, then answers without tools.

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
from agents.selectors import aagent_bindings, adefault_provider, aprovider
from usage.services import CallContext

TOOL_RESULT_LIMIT = 16_000  # characters of a tool's answer given back to the model


@dataclass
class AgentEvent:
    type: str  # "chunk" | "tool_call" | "tool_result" | "final"
    data: Any = None


@dataclass
class AgentReply:
    content: str
    finish_reason: str
    model: str
    usage: Usage
    tool_calls: list[dict] = field(default_factory=list)


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
    tools = [_tool_spec(b) for b in bindings.values()] or None
    convo = ([{"role": "system", "content": agent.instructions}] if agent.instructions else []) + list(messages)
    total = Usage()
    traced: list[dict] = []

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
            )
            yield AgentEvent("final", reply)
            return

        convo.append({"role": "assistant", "content": content or None, "tool_calls": [c.as_openai() for c in calls]})
        for call in calls:
            call_data = {"id": call.id, "name": call.name, "arguments": call.arguments}
            yield AgentEvent("tool_call", call_data)
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
