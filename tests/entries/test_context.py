"""session(): the ambient session id follows contextvars semantics."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from ingress_logging import InvalidSessionIdError
from ingress_logging.entries import current_session_id, session


def test_unset_by_default() -> None:
    assert current_session_id() is None


def test_with_block_sets_and_restores() -> None:
    with session("outer") as sid:
        assert sid == "outer"
        assert current_session_id() == "outer"
        with session("inner"):
            assert current_session_id() == "inner"
        assert current_session_id() == "outer"
    assert current_session_id() is None


def test_restored_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), session("s1"):
        raise RuntimeError("boom")
    assert current_session_id() is None


def test_one_instance_reentered() -> None:
    block = session("again")
    with block:
        with block:
            assert current_session_id() == "again"
        assert current_session_id() == "again"
    assert current_session_id() is None


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "a\nb", "x" * 300, 42])
def test_invalid_id_raises_at_the_source(bad: object) -> None:
    with pytest.raises(InvalidSessionIdError):
        session(bad)  # type: ignore[arg-type]
    assert current_session_id() is None


def test_decorator_sync_and_threads() -> None:
    seen: dict[str, str | None] = {}

    @session("deco")
    def work(name: str) -> str | None:
        seen[name] = current_session_id()
        return current_session_id()

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert work("main") == "deco"
    assert seen == {"t0": "deco", "t1": "deco", "t2": "deco", "t3": "deco", "main": "deco"}
    assert current_session_id() is None
    assert work.__name__ == "work"


def test_decorator_async() -> None:
    @session("async-deco")
    async def work() -> str | None:
        await asyncio.sleep(0)
        return current_session_id()

    assert asyncio.run(work()) == "async-deco"
    assert current_session_id() is None


def test_plain_thread_does_not_inherit_but_copy_context_does() -> None:
    results: dict[str, str | None] = {}
    with session("parent"):
        plain = threading.Thread(target=lambda: results.__setitem__("plain", current_session_id()))
        ctx = contextvars.copy_context()
        copied = threading.Thread(
            target=lambda: results.__setitem__("copied", ctx.run(current_session_id))
        )
        plain.start()
        copied.start()
        plain.join()
        copied.join()
    assert results == {"plain": None, "copied": "parent"}


def test_asyncio_tasks_are_isolated() -> None:
    async def task(name: str, gate: asyncio.Event) -> tuple[str, str | None]:
        with session(name):
            await gate.wait()  # interleave with the other tasks while inside the block
            return name, current_session_id()

    async def main() -> list[tuple[str, str | None]]:
        gate = asyncio.Event()
        tasks = [asyncio.create_task(task(f"task-{i}", gate)) for i in range(5)]
        await asyncio.sleep(0)
        gate.set()
        return await asyncio.gather(*tasks)

    for name, seen in asyncio.run(main()):
        assert seen == name


def test_to_thread_carries_the_session() -> None:
    async def main() -> str | None:
        with session("to-thread"):
            return await asyncio.to_thread(current_session_id)

    assert asyncio.run(main()) == "to-thread"
