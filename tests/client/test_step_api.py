"""The step API the delivery engine drives: begin_append / advance / resume."""

from __future__ import annotations

import uuid

import pytest

from ingress_logging.client import PendingAppend
from ingress_logging.protocol import AppendOutcome, Done, Put, Refetch, Wait


def entry() -> dict[str, str]:
    return {"type": "user", "uuid": str(uuid.uuid4())}


def test_begin_then_advance_to_done(client, ingress_server):
    e = entry()
    pending = client.begin_append("s", e)
    assert isinstance(pending, PendingAppend)
    assert pending.action == Put(None, 1)
    assert pending.body.startswith(b"{")
    assert ingress_server.requests == []  # begin sends nothing
    action = client.advance(pending)
    assert action == Done(AppendOutcome.STORED, 201)
    assert pending.done
    # the head map learnt the new head: the next begin sends it
    assert client.begin_append("s", entry()).action == Put(e["uuid"], 1)
    # advancing a finished append does nothing
    assert client.advance(pending) == action
    assert len(ingress_server.wait_for_requests(1)) == 1


def test_wait_is_left_to_the_caller(client, ingress_server):
    ingress_server.faults.fail_next(1)
    pending = client.begin_append("s", entry())
    action = client.advance(pending)
    assert isinstance(action, Wait)
    assert action.attempt == 1
    assert client.resume(pending) == Put(None, 2)
    assert client.advance(pending).outcome is AppendOutcome.STORED
    assert [r.status for r in ingress_server.wait_for_requests(2)] == [503, 201]


def test_advance_after_a_wait_means_the_wait_is_over(client, ingress_server):
    ingress_server.faults.fail_next(1)
    pending = client.begin_append("s", entry())
    assert isinstance(client.advance(pending), Wait)
    assert client.advance(pending) == Put(None, 2)  # no request for the Wait itself
    assert client.advance(pending).ok
    assert len(ingress_server.wait_for_requests(2)) == 2


def test_resume_without_a_wait_is_a_usage_error(client):
    pending = client.begin_append("s", entry())
    with pytest.raises(RuntimeError):
        client.resume(pending)


def test_no_token_is_done_at_begin(make_client, ingress_server):
    client = make_client(token=None)
    pending = client.begin_append("s", entry())
    assert pending.action == Done(AppendOutcome.NO_TOKEN)
    assert ingress_server.requests == []


def test_refetch_step(client, ingress_server):
    assert client.append_session_log("s", entry())
    ingress_server.append_foreign("s")
    ingress_server.faults.omit_conflict_head = True
    pending = client.begin_append("s", entry())
    assert client.advance(pending) == Refetch()  # 409 without x-last-uuid
    assert pending.action == Refetch()
    nxt = client.advance(pending)  # the GET
    assert nxt == Put(ingress_server.head("s"), 1)  # another writer's progress: no attempt used
    assert client.advance(pending).ok


def test_engine_may_call_on_waited_on_the_exchange_itself(client, ingress_server):
    ingress_server.faults.fail_next(1)
    pending = client.begin_append("s", entry())
    assert isinstance(client.advance(pending), Wait)
    assert pending.exchange.on_waited() == Put(None, 2)
    assert pending.action == Put(None, 2)  # the pending append sees the step
    assert client.advance(pending).ok
    records = ingress_server.wait_for_requests(2)
    assert [r.status for r in records] == [503, 201]
