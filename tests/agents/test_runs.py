"""Background runs: the API, a real Celery worker on the real broker, the SSE events, cancelling,
and what happens when a task is delivered twice or its worker dies.

Tests with a worker (or that run the service, whose event loop reads the database from another
thread) need committed data: ``django_db(transaction=True)``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from agents import runs
from agents.models import Agent, Provider, Run, RunEvent, Tool, ToolBinding
from tests.conftest import run_async, wait_for
from tests.fake_openai import Fail, Hang, Reply, ToolCalls
from usage.models import UsageRecord

pytestmark = pytest.mark.usefixtures("fast_retries")
transactional = pytest.mark.django_db(transaction=True)


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def fast_watch(monkeypatch):
    """A running attempt notices a cancel (or a lost run) within 0.1 s instead of 1 s."""
    monkeypatch.setattr(runs, "WATCH_SECONDS", 0.1)


@pytest.fixture
def worker(fast_watch, celery_worker):
    return celery_worker


@pytest.fixture
def upstream(tenant, fake_openai):
    return Provider.objects.create(
        project=tenant.project,
        name="up",
        base_url=fake_openai.base_url,
        api_key="sk",
        default_chat_model="gpt-4o-mini",
        is_default=True,
        max_retries=0,
    )


@pytest.fixture
def agent(tenant, upstream):
    return Agent.objects.create(project=tenant.project, name="helper", instructions="You help.")


def make_run(agent, input="Where is my order?", **fields) -> Run:
    """A queued run as ``run_create`` leaves it, without sending its task."""
    run = Run.objects.create(project=agent.project, agent=agent, input=input, **fields)
    runs.run_event_append(run.pk, "status", {"status": "queued"})
    return run


def wait_final(run_id, timeout: float = 15.0) -> Run:
    return wait_for(
        lambda: Run.objects.filter(pk=run_id, status__in=Run.FINAL).first(), timeout, what=f"run {run_id} to end"
    )


def event_types(run_id) -> list[str]:
    return list(RunEvent.objects.filter(run_id=run_id).order_by("seq").values_list("type", flat=True))


def succeeded_records(run_id):
    return UsageRecord.objects.filter(run_id=run_id, status=UsageRecord.Status.SUCCEEDED)


def assert_usage_matches_ledger(run: Run) -> None:
    totals = succeeded_records(run.pk).aggregate(p=Sum("prompt_tokens"), c=Sum("completion_tokens"))
    assert run.usage["prompt_tokens"] == totals["p"] > 0
    assert run.usage["completion_tokens"] == totals["c"]
    assert run.usage["total_tokens"] == totals["p"] + totals["c"]


def read_events(raw_key: str, run_id, **query) -> list[tuple[str | None, str | None, str]]:
    """GET /runs/{id}/events in one event loop; (id, event, data) of each SSE message."""
    from django.test import AsyncClient

    async def go():
        response = await AsyncClient().get(
            f"/api/v1/runs/{run_id}/events", query, headers={"Authorization": f"Bearer {raw_key}"}
        )
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == "text/event-stream"
        return b"".join([chunk async for chunk in response.streaming_content]).decode()

    messages = []
    for block in run_async(go).strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "data" in fields:
            messages.append((fields.get("id"), fields.get("event"), fields["data"]))
    return messages


def start_run(tenant, agent, body=None):
    response = tenant.client("write_key").post(
        f"/api/v1/agents/{agent.pk}/runs/", body or {"input": "Where is my order?"}, format="json"
    )
    assert response.status_code == 202, response.content
    return response


# --- with a real worker -------------------------------------------------------------------------


@transactional
def test_a_run_is_executed_by_a_worker_and_streams_its_events(tenant, agent, fake_openai, worker):
    fake_openai.script(Reply(" ".join(f"w{i}" for i in range(45))))

    response = start_run(tenant, agent)

    body = response.json()
    assert body["status"] == "queued" and body["agent"] == str(agent.pk)
    assert response["Location"] == f"/api/v1/runs/{body['id']}"
    run = wait_final(body["id"])
    assert run.status == "succeeded", run.error
    assert run.output == " ".join(f"w{i}" for i in range(45))
    assert run.attempts == 1 and run.error is None and run.cancel_requested is False
    assert run.created_at <= run.started_at <= run.heartbeat_at <= run.finished_at
    assert run.api_key_id == tenant.write_key.pk
    # one model call, metered once, on the run
    record = succeeded_records(run.pk).get()
    assert record.agent_id == agent.pk and record.api_key_id == tenant.write_key.pk
    assert UsageRecord.objects.filter(run_id=run.pk).count() == 1
    assert_usage_matches_ledger(run)

    # the API shows it
    detail = tenant.client("read_key").get(f"/api/v1/runs/{run.pk}/").json()
    assert detail["status"] == "succeeded" and detail["output"] == run.output
    assert detail["usage"]["total_tokens"] == record.total_tokens and detail["finished_at"]

    # the events: progress, the text in batches (not one row per token), the result
    messages = read_events(tenant.read_key.raw, run.pk)
    kinds = [kind for _, kind, _ in messages]
    assert kinds[:2] == ["status", "status"] and kinds[-1] is None and messages[-1][2] == "[DONE]"
    assert kinds[-2] == "final" and set(kinds[2:-2]) == {"tokens"}
    assert 2 <= kinds.count("tokens") < 45
    assert [int(i) for i, _, _ in messages[:-1]] == list(range(1, len(messages)))
    assert json.loads(messages[1][2]) == {"status": "running", "attempt": 1}
    text = "".join(json.loads(data)["text"] for _, kind, data in messages if kind == "tokens")
    assert text == run.output
    final = json.loads(messages[-2][2])
    assert final["status"] == "succeeded" and final["output"] == run.output and final["usage"] == run.usage

    # replay after a given event
    assert next(i for i, _, _ in read_events(tenant.read_key.raw, run.pk, after=3)) == "4"


class _OrdersHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"order": self.path.rsplit("/", 1)[-1], "state": "shipped"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def orders_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OrdersHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@transactional
def test_tool_rounds_are_events_and_every_model_call_is_metered_once(
    tenant, agent, fake_openai, orders_api, worker, settings
):
    settings.TOOLS_ALLOW_PRIVATE_NETWORKS = True
    tool = Tool.objects.create(
        project=tenant.project,
        name="get_order",
        url_template=orders_api + "/orders/{order_id}",
        parameters={"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    )
    ToolBinding.objects.create(project=tenant.project, agent=agent, tool=tool)
    fake_openai.script(ToolCalls([("get_order", '{"order_id": "A7"}')]), Reply("Order A7 has shipped."))

    run = wait_final(start_run(tenant, agent).json()["id"])

    assert run.status == "succeeded", run.error
    assert run.output == "Order A7 has shipped."
    types = event_types(run.pk)
    assert types[:2] == ["status", "status"] and types[-1] == "final"
    assert types.index("tool_call") < types.index("tool_result") < types.index("final")
    result = RunEvent.objects.get(run=run, type="tool_result").data
    assert result["name"] == "get_order" and result["result"]["body"] == {"order": "A7", "state": "shipped"}
    assert succeeded_records(run.pk).count() == 2 == len(fake_openai.chat_requests())
    assert_usage_matches_ledger(run)


@transactional
def test_a_provider_failure_fails_the_run_with_its_error(tenant, agent, fake_openai, worker):
    fake_openai.script(Fail(401))

    run = wait_final(start_run(tenant, agent).json()["id"])

    assert run.status == "failed"
    assert run.error["code"] == "provider_auth_failed" and run.error["message"]
    assert run.finished_at and run.output == ""
    assert event_types(run.pk)[-1] == "error"
    assert RunEvent.objects.get(run=run, type="error").data == {"status": "failed", **run.error}
    assert not succeeded_records(run.pk).exists()
    messages = read_events(tenant.read_key.raw, run.pk)
    assert messages[-2][1] == "error" and messages[-1][2] == "[DONE]"


@transactional
def test_cancelling_a_running_run_stops_the_model_call(tenant, agent, fake_openai, worker):
    fake_openai.script(Hang(5))
    run_id = start_run(tenant, agent).json()["id"]
    wait_for(lambda: fake_openai.chat_requests(), what="the model call")

    response = tenant.client("write_key").post(f"/api/v1/runs/{run_id}/cancel/")

    assert response.status_code == 202, response.content
    assert response.json()["cancel_requested"] is True and response.json()["status"] == "running"
    started = time.monotonic()
    run = wait_final(run_id, timeout=4)
    assert time.monotonic() - started < 2  # the call in flight was closed, not waited out
    assert run.status == "cancelled" and run.finished_at
    assert event_types(run_id)[-1] == "cancelled"
    # the interrupted call is in the ledger as cancelled, nothing as succeeded
    assert not succeeded_records(run_id).exists()
    assert UsageRecord.objects.filter(run_id=run_id, status="cancelled").count() == 1


# --- the API without a worker ---------------------------------------------------------------------


@pytest.mark.django_db
def test_creating_a_run_validates_the_input_and_the_caller(tenant, agent, other_tenant):
    url = f"/api/v1/agents/{agent.pk}/runs/"
    ok = {"input": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}

    response = tenant.client("member").post(url, ok, format="json")
    assert response.status_code == 202, response.content
    run = Run.objects.get(pk=response.json()["id"])
    assert run.input == ok["input"] and run.user_id == tenant.member.pk and run.api_key_id is None
    assert event_types(run.pk) == ["status"]

    for bad in ({"input": ""}, {"input": []}, {"input": 7}, {"input": [{"role": "robot"}]}, {}, {"input": "x", "y": 1}):
        response = tenant.client("write_key").post(url, bad, format="json")
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "validation_error"
    assert tenant.client("read_key").post(url, {"input": "hi"}, format="json").status_code == 403
    assert tenant.client("viewer").post(url, {"input": "hi"}, format="json").status_code == 403
    assert other_tenant.client("write_key").post(url, {"input": "hi"}, format="json").status_code == 404

    Agent.objects.filter(pk=agent.pk).update(is_active=False)
    response = tenant.client("write_key").post(url, {"input": "hi"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "agent_inactive"
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_runs_are_listed_with_filters(tenant, agent):
    other_agent = Agent.objects.create(project=tenant.project, name="other")
    done = make_run(agent, status="succeeded")
    queued = make_run(agent)
    theirs = make_run(other_agent)
    Run.objects.filter(pk=done.pk).update(created_at=timezone.now() - timedelta(days=2))
    client = tenant.client("read_key")

    def ids(**query):
        response = client.get("/api/v1/runs/", query)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids() == [str(theirs.pk), str(queued.pk), str(done.pk)]
    assert ids(status="succeeded") == [str(done.pk)]
    assert set(ids(status=["succeeded", "queued"])) == {str(done.pk), str(queued.pk), str(theirs.pk)}
    assert ids(agent=str(other_agent.pk)) == [str(theirs.pk)]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert str(done.pk) not in ids(created_after=since) and ids(created_before=since) == [str(done.pk)]
    assert ids(ordering="created_at")[0] == str(done.pk)
    assert ids(created_after="0029-02-23T05:11:45+18:12") == ids()  # an offset PostgreSQL would refuse
    assert client.get("/api/v1/runs/", {"created_after": "0001-01-01T00:00:00+05:00"}).status_code == 400
    assert tenant.client("write_key").post("/api/v1/runs/", {"input": "x"}, format="json").status_code == 405


@pytest.mark.django_db
def test_cancelling_a_queued_or_finished_run(tenant, agent):
    run = make_run(agent)
    client = tenant.client("write_key")

    refused = client.post(f"/api/v1/runs/{run.pk}/cancel/", {"reason": "x"}, format="json")
    response = client.post(f"/api/v1/runs/{run.pk}/cancel/")

    assert refused.status_code == 400 and refused.json()["error"]["code"] == "validation_error"
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled" and response.json()["finished_at"]
    assert event_types(run.pk) == ["status", "cancelled"]
    assert client.post(f"/api/v1/runs/{run.pk}/cancel/").status_code == 200  # again: a no-op
    assert event_types(run.pk) == ["status", "cancelled"]
    assert tenant.client("read_key").post(f"/api/v1/runs/{run.pk}/cancel/").status_code == 403

    finished = make_run(agent, status="succeeded")
    response = client.post(f"/api/v1/runs/{finished.pk}/cancel/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "run_finished"


@pytest.mark.django_db
def test_events_replay_from_last_event_id(tenant, agent):
    run = make_run(agent, status="succeeded", output="Hi")
    for kind, data in [("status", {"status": "running", "attempt": 1}), ("tokens", {"text": "Hi"}), ("final", {})]:
        runs.run_event_append(run.pk, kind, data)

    all_ids = [i for i, _, _ in read_events(tenant.read_key.raw, run.pk)]
    assert all_ids == ["1", "2", "3", "4", None]
    assert [k for _, k, _ in read_events(tenant.read_key.raw, run.pk, after=2)] == ["tokens", "final", None]

    from django.test import AsyncClient

    async def get(**kwargs):
        return await AsyncClient().get(f"/api/v1/runs/{run.pk}/events", **kwargs)

    auth = {"Authorization": f"Bearer {tenant.read_key.raw}"}
    response = run_async(get, headers={**auth, "Last-Event-ID": "3"})
    body = run_async(_join, response)
    assert "id: 4\nevent: final" in body and "id: 3\n" not in body
    response = run_async(get, data={"after": "x"}, headers=auth)
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


async def _join(response) -> str:
    return b"".join([chunk async for chunk in response.streaming_content]).decode()


@pytest.mark.django_db
def test_retry_queues_a_failed_run_again(tenant, agent):
    run = make_run(agent, status="failed", error={"code": "x", "message": "y"}, attempts=2, usage={"a": 1})

    runs.run_retry(run=run)

    run.refresh_from_db()
    assert run.status == "queued" and run.attempts == 2
    assert run.error is None and run.output == "" and run.usage == {} and run.finished_at is None
    assert event_types(run.pk)[-1] == "status"
    with pytest.raises(runs.RunNotRetryable):
        runs.run_retry(run=run)


# --- delivered twice, workers lost -------------------------------------------------------------


@transactional
def test_a_task_delivered_twice_executes_the_run_once(tenant, agent, fake_openai):
    from agents.tasks import run_execute

    run = make_run(agent)

    first = run_execute.apply(args=[str(run.pk)])
    second = run_execute.apply(args=[str(run.pk)])

    assert (first.get(), second.get()) == ("done", "skipped")
    run.refresh_from_db()
    assert run.status == "succeeded" and run.attempts == 1
    assert len(fake_openai.chat_requests()) == 1
    assert succeeded_records(run.pk).count() == 1
    assert event_types(run.pk).count("final") == 1


def _as_a_dead_worker_left_it(run: Run, *, ago: float = 600) -> None:
    """running, attempt 1, a heartbeat long past: its worker was killed mid-run."""
    then = timezone.now() - timedelta(seconds=ago)
    Run.objects.filter(pk=run.pk).update(status="running", attempts=1, started_at=then, heartbeat_at=then)
    runs.run_event_append(run.pk, "status", {"status": "running", "attempt": 1})


@transactional
def test_a_redelivered_run_of_a_dead_worker_completes_once(tenant, agent, fake_openai):
    from agents.tasks import run_execute

    run = make_run(agent)
    _as_a_dead_worker_left_it(run)

    assert run_execute.apply(args=[str(run.pk)]).get() == "done"  # the broker redelivers the task

    run.refresh_from_db()
    assert run.status == "succeeded" and run.attempts == 2
    assert succeeded_records(run.pk).count() == 1 == len(fake_openai.chat_requests())
    assert_usage_matches_ledger(run)
    assert RunEvent.objects.filter(run=run, type="status").last().data == {"status": "running", "attempt": 2}
    assert run_execute.apply(args=[str(run.pk)]).get() == "skipped"


@transactional
def test_a_run_whose_worker_is_alive_is_not_taken_over(tenant, agent, fake_openai):
    run = make_run(agent)
    _as_a_dead_worker_left_it(run, ago=1)  # a fresh heartbeat: its worker is at it

    assert runs.run_execute(run.pk) is runs.Outcome.BUSY

    run.refresh_from_db()
    assert run.status == "running" and run.attempts == 1 and not fake_openai.chat_requests()


@transactional
def test_a_dead_worker_that_was_charged_fails_the_run_rather_than_pay_twice(tenant, agent, fake_openai):
    from usage.services import CallContext, usage_record

    run = make_run(agent)
    _as_a_dead_worker_left_it(run)
    usage_record(  # a model call the lost attempt finished (a tool round) before dying
        ctx=CallContext(project_id=tenant.project.pk, run_id=run.pk),
        provider_id=None,
        provider_kind="openai",
        model="gpt-4o-mini",
        operation="stream",
        prompt_tokens=10,
        completion_tokens=5,
        estimated=False,
        latency_ms=5,
        status="succeeded",
    )

    assert runs.run_execute(run.pk) is runs.Outcome.DONE

    run.refresh_from_db()
    assert run.status == "failed" and run.error["code"] == "worker_lost"
    assert "charged twice" in run.error["message"]
    assert not fake_openai.chat_requests() and succeeded_records(run.pk).count() == 1


@transactional
def test_the_reaper_fails_runs_nobody_is_executing(tenant, agent, fake_openai):
    from agents.tasks import runs_reap_stale

    lost = make_run(agent)
    _as_a_dead_worker_left_it(lost, ago=runs.REAP_AFTER_SECONDS + 30)
    alive = make_run(agent)
    _as_a_dead_worker_left_it(alive, ago=5)
    forgotten = make_run(agent)
    Run.objects.filter(pk=forgotten.pk).update(updated_at=timezone.now() - timedelta(hours=2))
    fresh = make_run(agent)

    assert runs_reap_stale.apply().get() == {"worker_lost": 1, "not_picked_up": 1}

    states = dict(Run.objects.values_list("pk", "status"))
    assert states == {lost.pk: "failed", alive.pk: "running", forgotten.pk: "failed", fresh.pk: "queued"}
    lost.refresh_from_db()
    forgotten.refresh_from_db()
    assert lost.error == {"code": "worker_lost", "message": "The worker executing this run stopped."}
    assert forgotten.error["code"] == "not_picked_up" and lost.finished_at
    assert event_types(lost.pk)[-1] == "error"
    # the task of the reaped run, redelivered late, does nothing
    assert runs.run_execute(lost.pk) is runs.Outcome.SKIPPED
    assert not fake_openai.chat_requests()
    assert runs_reap_stale.apply().get() == {"worker_lost": 0, "not_picked_up": 0}


@transactional
def test_a_retryable_failure_queues_the_run_again(tenant, agent, fake_openai):
    fake_openai.script(Fail(503))
    run = make_run(agent)

    assert runs.run_execute(run.pk, may_retry=True) is runs.Outcome.RETRY

    run.refresh_from_db()
    assert run.status == "queued" and run.attempts == 1
    retry = RunEvent.objects.filter(run=run).last().data
    assert retry["status"] == "queued" and retry["retry"]["code"] == "provider_unavailable"
    assert runs.run_execute(run.pk, may_retry=True) is runs.Outcome.DONE
    run.refresh_from_db()
    assert run.status == "succeeded" and run.attempts == 2
    assert_usage_matches_ledger(run)


@transactional
def test_a_run_that_takes_too_long_fails(tenant, agent, fake_openai, monkeypatch):
    monkeypatch.setattr(runs, "RUN_TIMEOUT_SECONDS", 0.5)
    fake_openai.script(Hang(3))
    run = make_run(agent)

    assert runs.run_execute(run.pk) is runs.Outcome.DONE

    run.refresh_from_db()
    assert run.status == "failed" and run.error["code"] == "run_timeout"
    assert not succeeded_records(run.pk).exists()


# --- a real worker process, killed mid-run ---------------------------------------------------


def _worker_process(log_path) -> subprocess.Popen:
    """``celery worker`` in a process of its own, on the test database and broker."""
    from django.db import connection
    from psycopg.conninfo import make_conninfo

    db = connection.settings_dict
    conninfo = make_conninfo(
        "",
        **{
            key: str(value)
            for key, value in {
                "dbname": db["NAME"],
                "host": db["HOST"],
                "port": db["PORT"],
                "user": db["USER"],
                "password": db["PASSWORD"],
            }.items()
            if value
        },
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "AGENTDESK_DATA_DIR": str(settings.DATA_DIR),
        "DATABASE_URL": conninfo,
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_LLM_QUEUE": settings.CELERY_LLM_QUEUE,
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-Q", settings.CELERY_LLM_QUEUE]
    command += ["-n", f"doomed-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, env=env, cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT)


@transactional
def test_a_worker_killed_mid_run_is_replaced_and_the_run_completes_once(
    tenant, agent, fake_openai, monkeypatch, tmp_path
):
    from config.celery import app

    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.CELERY_LLM_QUEUE)
    log = tmp_path / "worker.log"
    process = _worker_process(log)
    try:
        fake_openai.script(Hang(20))  # the model call the doomed worker will be in when it dies
        run_id = start_run(tenant, agent).json()["id"]
        wait_for(lambda: fake_openai.chat_requests(), timeout=30, what=f"the worker's model call ({log.read_text()})")
        assert Run.objects.get(pk=run_id).status == "running"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    # The task was never acknowledged: the broker hands it out again once its visibility timeout
    # passes (made short here), and the new worker takes the run over once its heartbeat is stale.
    monkeypatch.setattr(runs, "TAKEOVER_AFTER_SECONDS", 1)
    options = {"visibility_timeout": 1, "unacked_restore_interval": 1, "unacked_restore_throttle": 1}
    monkeypatch.setitem(app.conf, "broker_transport_options", options)
    from celery.contrib.testing.worker import start_worker

    queues = [settings.CELERY_LLM_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE]  # sticks to the app: keep both
    with start_worker(app, pool="solo", queues=queues, perform_ping_check=False, shutdown_timeout=10):
        run = wait_final(run_id, timeout=30)

    assert run.status == "succeeded", run.error
    assert run.attempts == 2 and run.output == "Echo: Where is my order?"
    assert len(fake_openai.chat_requests()) == 2  # the lost call, and the one that answered
    assert succeeded_records(run_id).count() == 1  # the lost call left no charge
    assert_usage_matches_ledger(run)
    statuses = [e.data for e in RunEvent.objects.filter(run_id=run_id, type="status").order_by("seq")]
    assert statuses == [{"status": "queued"}, {"status": "running", "attempt": 1}, {"status": "running", "attempt": 2}]
