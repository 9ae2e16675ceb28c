"""Runs: an agent executed in the background by a Celery worker.

A run is ``queued`` when created, ``running`` once a worker claims it, and ends ``succeeded``,
``failed`` or ``cancelled``. What it does on the way is appended as :class:`RunEvent` rows
(``GET /runs/{id}/events`` streams them):

* ``status``       ``{"status": "queued"}`` / ``{"status": "running", "attempt": n}``
* ``tokens``       ``{"text": ...}``: the answer as it streams, batched (not one row per token)
* ``tool_call``    ``{"id", "name", "arguments"}``; ``tool_result`` ``{"id", "name", "result"}``
* ``final``        ``{"status": "succeeded", "output", "finish_reason", "model", "usage"}``
* ``error``        ``{"status": "failed", "code", "message"}``
* ``cancelled``    ``{"status": "cancelled"}``

Exactly one of the last three ends a run, written in the same transaction as the run's final
status, so a reader that sees the run final has all of its events.

**At most one execution.** Every state change is a conditional UPDATE. A worker claims a run
``queued -> running`` (``attempts + 1``); the attempt number is its fencing token: its heartbeats,
events and final write all require ``status = running AND attempts = <its attempt>``, so a worker
that lost the run (reaped, taken over) can no longer write anything, and a second delivery of a
claimed or finished run does nothing.

**Worker loss.** A running attempt beats every few seconds (``heartbeat_at``). A redelivered task
(the broker hands an unacknowledged task to another worker) takes over a run whose heartbeat is
older than :data:`TAKEOVER_AFTER_SECONDS`. The beat task :func:`runs_reap_stale` fails runs whose
heartbeat is older than :data:`REAP_AFTER_SECONDS` (``worker_lost``), so no run stays running.

**Never charged twice.** Every model call is metered by the gateway with the run's id. A
taken-over run re-executes from the start, which is only done when the lost attempt had no
successful model call; otherwise the run fails with ``worker_lost`` rather than pay for those
calls again (:func:`run_retry` starts it over when someone asks). Automatic retries of a
retryable provider failure follow the same rule. A succeeded run's ``usage`` is therefore the
sum of its succeeded usage records (since the last explicit :func:`run_retry`, which is a new
charge by request). A worker killed in the middle of a call leaves no record of that call; a
stream interrupted by a cancel is recorded as ``cancelled`` with what it produced. A cancelled or
failed run's ``usage`` is what the ledger holds for its last attempt.

Timing: the heartbeat is written every :data:`HEARTBEAT_SECONDS` by a watcher task, not only
when output arrives, so a silent model or tool call does not look like a dead worker. A prefork
child that dies has its task requeued at once (``reject_on_worker_lost``): the redelivery waits
until the heartbeat is stale and takes over. A whole worker killed leaves the task unacknowledged
until the broker's visibility timeout (longer than the task's time limit); the reaper fails the
run first, with ``worker_lost``, and the late redelivery then finds nothing to do.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections, transaction
from django.db.models import F, Max, Q, Sum
from django.utils import timezone

from agents.models import Agent, Run, RunEvent
from config.exceptions import Conflict, DomainError, error_info
from usage.services import CallContext

logger = logging.getLogger(__name__)

Status = Run.Status

# A running attempt writes its heartbeat at least this often (and on every batch of events)...
HEARTBEAT_SECONDS = 5.0
# ... and looks for a cancel request (or for having lost the run) this often.
WATCH_SECONDS = 1.0
# A redelivered task may take over a run whose heartbeat is this old: its worker is gone.
TAKEOVER_AFTER_SECONDS = 60
# The reaper fails running runs whose heartbeat is this old, and queued runs no worker took.
REAP_AFTER_SECONDS = 180
QUEUED_TOO_LONG_SECONDS = 3600
# One attempt may take this long; below the task's soft time limit (see agents.tasks).
RUN_TIMEOUT_SECONDS = 540
# Streamed text is written as one ``tokens`` event per this many chunks, or this often.
FLUSH_CHUNKS = 20
FLUSH_SECONDS = 0.5


class Outcome(enum.Enum):
    """What :func:`run_execute` did with a delivery of a run's task."""

    DONE = "done"  # ran it to a final state
    SKIPPED = "skipped"  # nothing to do: already final, gone, or cancelled while queued
    BUSY = "busy"  # another worker is running it (fresh heartbeat): look again later
    RETRY = "retry"  # a retryable failure; the run is queued again: deliver it again later
    LOST = "lost"  # the run was taken from this attempt (reaped or taken over) while it ran


class RunNotRetryable(Conflict):
    code = "run_not_retryable"
    message = "Only failed or cancelled runs can be retried."


class RunFinished(Conflict):
    code = "run_finished"
    message = "The run has already finished."


# --- events ---------------------------------------------------------------------------------


def _next_seq(run_id) -> int:
    return (RunEvent.objects.filter(run_id=run_id).aggregate(m=Max("seq"))["m"] or 0) + 1


def run_event_append(run_id, type: str, data: dict) -> RunEvent:
    """Append one event. Call it in the transaction that changed the run (its row lock orders
    the writers); the running attempt writes its own events through :func:`_commit`."""
    return RunEvent.objects.create(run_id=run_id, seq=_next_seq(run_id), type=type, data=data)


def _error_data(code: str, message: str) -> dict:
    return {"code": code, "message": message}


# --- create, cancel, retry ----------------------------------------------------------------


def _enqueue(run: Run) -> None:
    """Send the run's task (after commit). A broker that refuses it fails the run at once,
    instead of leaving it queued for nobody."""
    from django.conf import settings

    from agents.tasks import run_execute as run_execute_task

    try:
        run_execute_task.apply_async(args=[str(run.pk)], queue=settings.CELERY_LLM_QUEUE)
    except Exception:
        logger.exception("could not enqueue run %s", run.pk)
        error = _error_data("queue_unavailable", "The run could not be queued; try again.")
        with transaction.atomic():
            done = Run.objects.filter(pk=run.pk, status=Status.QUEUED).update(
                status=Status.FAILED, error=error, finished_at=timezone.now(), updated_at=timezone.now()
            )
            if done:
                run_event_append(run.pk, "error", {"status": Status.FAILED, **error})
        if done:
            run.status, run.error = Status.FAILED, error


def run_create(*, agent: Agent, input: str | list[dict], api_key_id=None, user_id=None, request_id: str = "") -> Run:
    """Create a queued run of ``agent`` and have a worker execute it once this commits."""
    if not agent.is_active:
        raise DomainError("This agent is inactive.", code="agent_inactive")
    with transaction.atomic():
        run = Run.objects.create(
            project_id=agent.project_id,
            agent=agent,
            input=input,
            api_key_id=api_key_id,
            user_id=user_id,
            request_id=(request_id or "")[:128],
        )
        run_event_append(run.pk, "status", {"status": Status.QUEUED})
        transaction.on_commit(lambda: _enqueue(run))
    return run


def run_cancel(*, run: Run) -> Run:
    """Cancel ``run``: a queued run is cancelled at once; a running one is stopped by its worker
    within about :data:`WATCH_SECONDS`. Cancelling a cancelled run is a no-op; a succeeded or
    failed run is a conflict."""
    now = timezone.now()
    # Nobody to stop: queued, or running on a worker that stopped beating.
    idle = Q(status=Status.QUEUED) | Q(
        status=Status.RUNNING, heartbeat_at__lt=now - timedelta(seconds=TAKEOVER_AFTER_SECONDS)
    )
    with transaction.atomic():
        if Run.objects.filter(idle, pk=run.pk).update(
            status=Status.CANCELLED, cancel_requested=True, finished_at=now, updated_at=now
        ):
            run_event_append(run.pk, "cancelled", {"status": Status.CANCELLED})
        else:
            Run.objects.filter(pk=run.pk, status=Status.RUNNING).update(cancel_requested=True, updated_at=now)
    run.refresh_from_db()
    if run.status in (Status.SUCCEEDED, Status.FAILED):
        raise RunFinished(f"The run has already {run.status}.")
    return run


def run_retry(*, run: Run) -> Run:
    """Queue a failed or cancelled run again, from the start (a new charge: its model calls are
    made again). Keeps ``attempts``; clears the output, error and usage of the last attempt."""
    now = timezone.now()
    with transaction.atomic():
        requeued = Run.objects.filter(pk=run.pk, status__in=[Status.FAILED, Status.CANCELLED]).update(
            status=Status.QUEUED,
            output="",
            error=None,
            usage={},
            cancel_requested=False,
            started_at=None,
            finished_at=None,
            heartbeat_at=None,
            updated_at=now,
        )
        if not requeued:
            raise RunNotRetryable(f"Only failed or cancelled runs can be retried; this one is {run.status}.")
        run_event_append(run.pk, "status", {"status": Status.QUEUED, "retried": True})
        run.refresh_from_db()
        transaction.on_commit(lambda: _enqueue(run))
    return run


# --- the reaper -------------------------------------------------------------------------------


def _fail_if(run_id, condition: Q, code: str, message: str) -> bool:
    now = timezone.now()
    error = _error_data(code, message)
    with transaction.atomic():
        if not Run.objects.filter(condition, pk=run_id).update(
            status=Status.FAILED, error=error, finished_at=now, updated_at=now
        ):
            return False
        run_event_append(run_id, "error", {"status": Status.FAILED, **error})
    return True


def runs_reap_stale(*, limit: int = 500) -> dict[str, int]:
    """Fail running runs whose worker stopped beating, and queued runs no worker took."""
    now = timezone.now()
    lost = Q(status=Status.RUNNING) & (
        Q(heartbeat_at__lt=now - timedelta(seconds=REAP_AFTER_SECONDS))
        | Q(heartbeat_at__isnull=True, updated_at__lt=now - timedelta(seconds=REAP_AFTER_SECONDS))
    )
    forgotten = Q(status=Status.QUEUED, updated_at__lt=now - timedelta(seconds=QUEUED_TOO_LONG_SECONDS))
    counts = {"worker_lost": 0, "not_picked_up": 0}
    for run_id in Run.objects.filter(lost).values_list("pk", flat=True)[:limit]:
        if _fail_if(run_id, lost, "worker_lost", "The worker executing this run stopped."):
            counts["worker_lost"] += 1
    for run_id in Run.objects.filter(forgotten).values_list("pk", flat=True)[:limit]:
        if _fail_if(run_id, forgotten, "not_picked_up", "No worker picked this run up in time."):
            counts["not_picked_up"] += 1
    if any(counts.values()):
        logger.warning("reaped stale runs: %s", counts)
    return counts


# --- execution: claim -------------------------------------------------------------------------


def _charged_since(run_id, since) -> int:
    """Model calls of the run that succeeded (were charged) since ``since``."""
    from usage.models import UsageRecord

    records = UsageRecord.objects.filter(run_id=run_id, status=UsageRecord.Status.SUCCEEDED)
    if since is not None:
        records = records.filter(created_at__gte=since)
    return records.count()


def _claim(run_id) -> tuple[Run | None, Outcome | None]:
    """Take the run for a new attempt: ``(run, None)``, or ``(None, why not)``."""
    now = timezone.now()
    claimed = {"status": Status.RUNNING, "started_at": now, "heartbeat_at": now, "updated_at": now}
    with transaction.atomic():
        taken = Run.objects.filter(pk=run_id, status=Status.QUEUED, cancel_requested=False).update(
            attempts=F("attempts") + 1, **claimed
        )
        if not taken:
            # A redelivery of a run whose worker vanished mid-attempt (no heartbeat for a while).
            stale = now - timedelta(seconds=TAKEOVER_AFTER_SECONDS)
            previous = Run.objects.filter(pk=run_id, status=Status.RUNNING, heartbeat_at__lt=stale).first()
            if previous is None:
                current = Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
                return None, (Outcome.BUSY if current == Status.RUNNING else Outcome.SKIPPED)
            taken = Run.objects.filter(
                pk=run_id, status=Status.RUNNING, attempts=previous.attempts, heartbeat_at__lt=stale
            ).update(attempts=F("attempts") + 1, **claimed)
            if not taken:  # another delivery took it over first
                return None, Outcome.BUSY
            charged = _charged_since(run_id, previous.started_at)
            if charged:
                message = (
                    f"The worker executing this run stopped after {charged} model call(s) had been made; the run "
                    "was not started over automatically, so that they are not charged twice. Retry it to start over."
                )
                _fail_if(run_id, Q(status=Status.RUNNING, attempts=previous.attempts + 1), "worker_lost", message)
                return None, Outcome.DONE
            logger.warning("run %s: taking over from a lost worker (attempt %s)", run_id, previous.attempts)
        run = Run.objects.select_related("agent").get(pk=run_id)
        run_event_append(run_id, "status", {"status": Status.RUNNING, "attempt": run.attempts})
    return run, None


# --- execution: writes of the running attempt ---------------------------------------------------


class _State(enum.Enum):
    OK = "ok"
    CANCEL = "cancel"  # a cancel was requested
    LOST = "lost"  # this attempt no longer owns the run


def _commit(run_id, attempt: int, seq: int, events: list[tuple[str, dict]], finish: dict | None) -> _State:
    """Beat, append ``events`` from ``seq`` on, and (``finish``) set the run's final fields,
    all only while this attempt still owns the run."""
    now = timezone.now()
    with transaction.atomic():
        owned = Run.objects.filter(pk=run_id, status=Status.RUNNING, attempts=attempt)
        if not owned.update(**{"heartbeat_at": now, **(finish or {})}):
            return _State.LOST
        RunEvent.objects.bulk_create(
            [RunEvent(run_id=run_id, seq=seq + i, type=kind, data=data) for i, (kind, data) in enumerate(events)]
        )
        if finish:
            return _State.OK
        cancel = Run.objects.filter(pk=run_id).values_list("cancel_requested", flat=True).first()
    return _State.CANCEL if cancel else _State.OK


def _peek(run_id, attempt: int) -> _State:
    row = Run.objects.filter(pk=run_id).values("status", "attempts", "cancel_requested").first()
    if row is None or row["status"] != Status.RUNNING or row["attempts"] != attempt:
        return _State.LOST
    return _State.CANCEL if row["cancel_requested"] else _State.OK


def _ledger_usage(run_id, since) -> dict:
    """What the ledger holds for the run's calls since ``since`` (failed calls count nothing)."""
    from usage.models import UsageRecord

    totals = UsageRecord.objects.filter(run_id=run_id, created_at__gte=since).aggregate(
        prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens")
    )
    prompt, completion = totals["prompt"] or 0, totals["completion"] or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _messages(run_input: Any) -> list[dict]:
    if isinstance(run_input, str):
        return [{"role": "user", "content": run_input}]
    return [dict(m) for m in run_input]


# --- execution: the attempt ---------------------------------------------------------------------


class _Attempt:
    """One execution of a claimed run, inside an event loop of its own.

    Two tasks: ``main`` drives the agent loop and writes its events; the watcher beats and looks
    for a cancel request. Stopping (cancel, lost run, timeout) cancels ``main`` while it waits
    on the agent loop, so the model call or tool call in flight is closed where it stands (and
    the gateway records the interrupted stream).
    """

    def __init__(self, run: Run, *, may_retry: bool):
        self.run = run
        self.attempt = run.attempts
        self.started_at = run.started_at
        self.may_retry = may_retry
        self.seq = 0
        self.lock = asyncio.Lock()  # one writer at a time, so events keep their order
        self.last_beat = time.monotonic()
        self.tokens: list[str] = []
        self.tokens_since = 0.0
        self.stop_reason: str | None = None  # "cancel" | "lost" | "timeout"
        self.in_agent = False  # main is waiting on the agent loop
        self.main: asyncio.Task | None = None
        self._main_cancelled = False

    # writes

    async def commit(self, events: list[tuple[str, dict]] = (), finish: dict | None = None) -> _State:
        """Write the buffered text, then ``events`` (and ``finish``), and beat."""
        async with self.lock:
            text, self.tokens = "".join(self.tokens), []
            batch = ([("tokens", {"text": text})] if text else []) + list(events)
            state = await sync_to_async(_commit)(self.run.pk, self.attempt, self.seq, batch, finish)
            if state is not _State.LOST:
                self.seq += len(batch)
                self.last_beat = time.monotonic()
            return state

    async def progress(self, events: list[tuple[str, dict]] = ()) -> None:
        state = await self.commit(events)
        if state is not _State.OK:
            self.stop("cancel" if state is _State.CANCEL else "lost")

    # stopping

    def stop(self, reason: str, *, force: bool = False) -> None:
        if self.stop_reason is None and not self.main.done():
            self.stop_reason = reason
        if self.stop_reason is not None and (self.in_agent or force):
            self._cancel_main()

    def _cancel_main(self) -> None:
        if not self._main_cancelled:
            self._main_cancelled = True
            self.main.cancel()

    # tasks

    async def drive(self):
        from agents.chat import agent_respond

        run = self.run
        ctx = CallContext(
            project_id=run.project_id,
            api_key_id=run.api_key_id,
            user_id=run.user_id,
            agent_id=run.agent_id,
            run_id=run.pk,
            request_id=run.request_id,
        )
        events = agent_respond(ctx=ctx, agent=run.agent, messages=_messages(run.input), stream=True)
        iterator = events.__aiter__()
        try:
            while True:
                if self.stop_reason is not None:
                    # Delivered at the next wait, which is inside the agent loop: the call in
                    # flight ends there and is recorded.
                    self._cancel_main()
                self.in_agent = True
                try:
                    event = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    self.in_agent = False
                if event.type == "chunk":
                    if not self.tokens:
                        self.tokens_since = time.monotonic()
                    self.tokens.append(event.data)
                    if len(self.tokens) >= FLUSH_CHUNKS or time.monotonic() - self.tokens_since >= FLUSH_SECONDS:
                        await self.progress()
                elif event.type in ("retrieval", "tool_call", "tool_result"):
                    await self.progress([(event.type, event.data)])
                elif event.type == "final":
                    return event.data
        finally:
            await events.aclose()
        raise RuntimeError("the agent loop ended without a final event")

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            now = time.monotonic()
            stale_text = self.tokens and now - self.tokens_since >= FLUSH_SECONDS
            if now - self.last_beat >= HEARTBEAT_SECONDS or stale_text:
                state = await self.commit()
            else:
                state = await sync_to_async(_peek)(self.run.pk, self.attempt)
            if state is not _State.OK:
                self.stop("cancel" if state is _State.CANCEL else "lost")
                return

    async def execute(self) -> Outcome:
        self.seq = await sync_to_async(_next_seq)(self.run.pk)
        self.main = asyncio.ensure_future(self.drive())
        watcher = asyncio.ensure_future(self.watch())
        try:
            done, _ = await asyncio.wait({self.main}, timeout=RUN_TIMEOUT_SECONDS)
            if not done:
                self.stop("timeout", force=True)
                await asyncio.wait({self.main})
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        return await self.conclude()

    async def conclude(self) -> Outcome:
        """Write how the attempt ended: a result wins over a stop that came too late."""
        main = self.main
        exc = None if main.cancelled() else main.exception()
        if not main.cancelled() and exc is None:
            reply = main.result()
            usage = reply.usage.as_dict()
            final = {
                "status": Status.SUCCEEDED,
                "output": reply.content,
                "finish_reason": reply.finish_reason,
                "model": reply.model,
                "usage": usage,
                "citations": reply.citations,
            }
            finish = {"status": Status.SUCCEEDED, "output": reply.content, "usage": usage, "error": None}
            return await self.finish([("final", final)], finish)
        if self.stop_reason == "lost":
            logger.warning("run %s: attempt %s lost the run; stopped without writing", self.run.pk, self.attempt)
            return Outcome.LOST
        if self.stop_reason == "cancel":
            finish = {"status": Status.CANCELLED, "usage": await self.ledger_usage()}
            return await self.finish([("cancelled", {"status": Status.CANCELLED})], finish)
        if self.stop_reason == "timeout":
            error = _error_data("run_timeout", f"The run did not finish within {RUN_TIMEOUT_SECONDS} seconds.")
        else:
            info = error_info(exc) if exc is not None else None
            if info is None:
                logger.error("run %s failed", self.run.pk, exc_info=exc)
                error = _error_data("server_error", "The run failed unexpectedly; the error has been logged.")
            else:
                error = _error_data(info.code, info.message)
            if self.may_retry and getattr(exc, "retryable", False):
                charged = await sync_to_async(_charged_since)(self.run.pk, self.started_at)
                if not charged:
                    requeue = {"status": Status.QUEUED, "heartbeat_at": None, "updated_at": timezone.now()}
                    state = await self.commit([("status", {"status": Status.QUEUED, "retry": error})], requeue)
                    return Outcome.RETRY if state is not _State.LOST else Outcome.LOST
        finish = {"status": Status.FAILED, "error": error, "usage": await self.ledger_usage()}
        return await self.finish([("error", {"status": Status.FAILED, **error})], finish)

    async def finish(self, events: list[tuple[str, dict]], fields: dict) -> Outcome:
        now = timezone.now()
        state = await self.commit(events, {**fields, "finished_at": now, "heartbeat_at": now, "updated_at": now})
        return Outcome.DONE if state is not _State.LOST else Outcome.LOST

    async def ledger_usage(self) -> dict:
        return await sync_to_async(_ledger_usage)(self.run.pk, self.started_at)


async def _aexecute(run: Run, *, may_retry: bool) -> Outcome:
    from agents.providers import gateway
    from agents.providers.openai import close_clients

    try:
        return await _Attempt(run, may_retry=may_retry).execute()
    finally:
        # Streams left open by a stop write their (cancelled) usage records now, then the
        # ledger writes in flight land, before this loop ends.
        await asyncio.get_running_loop().shutdown_asyncgens()
        await gateway.drain()
        await close_clients()
        await sync_to_async(close_old_connections)()


def run_execute(run_id, *, may_retry: bool = False) -> Outcome:
    """Execute the run if it is to be executed (safe to call any number of times).

    Claims it, runs the agent loop in an event loop of its own, and writes the outcome. With
    ``may_retry``, a retryable provider failure before any model call was charged queues the
    run again and returns :attr:`Outcome.RETRY` (the caller delivers it again later).
    """
    from celery.exceptions import SoftTimeLimitExceeded

    run, outcome = _claim(run_id)
    if run is None:
        return outcome
    try:
        return asyncio.run(_aexecute(run, may_retry=may_retry))
    except SoftTimeLimitExceeded:
        message = "The run did not finish within the worker's time limit."
        _fail_if(run.pk, Q(status=Status.RUNNING, attempts=run.attempts), "run_timeout", message)
        return Outcome.DONE
