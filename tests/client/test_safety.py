"""Bad input is refused before any request; tokens never leak; lifecycle is honest."""

from __future__ import annotations

import logging
import traceback
import uuid
from typing import Any

import httpx
import pytest

from ingress_logging import (
    AsyncSessionIngressClient,
    InsecureTransportError,
    InvalidSessionIdError,
    RetryPolicy,
    SessionExpiredError,
    SessionIngressClient,
)
from ingress_logging.client._common import check_url
from ingress_logging.errors import InvalidURLError
from ingress_logging.plugins import new_plugin_manager

BAD_IDS = ["../x", "a/b", "%2F", "a%2Fb", "a\r\nb", "a\nb", "a\x00b", "x" * 300, "", "..", " a"]


def entry() -> dict[str, Any]:
    return {"type": "user", "uuid": str(uuid.uuid4())}


@pytest.mark.parametrize("sid", BAD_IDS)
def test_bad_session_ids_are_refused_before_any_request(client, ingress_server, sid):
    srv = ingress_server
    calls = [
        lambda: client.append_session_log(sid, entry()),
        lambda: client.append_session_log(sid, entry(), srv.session_url("ok")),
        lambda: client.get_session_logs(sid),
        lambda: client.get_session_logs_via_oauth(sid, srv.oauth_token, srv.org_uuid),
        lambda: client.get_teleport_events(sid, srv.oauth_token, srv.org_uuid),
        lambda: client.begin_append(sid, entry()),
        lambda: client.clear_session(sid),
    ]
    for call in calls:
        with pytest.raises(InvalidSessionIdError) as info:
            call()
        assert isinstance(info.value, ValueError)
    assert srv.requests == []


def test_bad_entries_are_refused_before_any_request(client, ingress_server):
    with pytest.raises(TypeError):
        client.append_session_log("s", ["not", "a", "dict"])
    with pytest.raises(TypeError):
        client.append_session_log("s", {"uuid": "u", "x": {1, 2}})
    assert ingress_server.requests == []


@pytest.mark.parametrize(
    "url", ["http://example.com/v1/x", "http://10.0.0.1/s", "http://localhost.evil.com/s"]
)
def test_plain_http_to_a_remote_host_is_refused(make_client, url):
    client = make_client(base_api_url=url.rsplit("/", 1)[0])
    with pytest.raises(InsecureTransportError):
        client.append_session_log("s", entry(), url)
    with pytest.raises(InsecureTransportError):
        client.get_session_logs("s", url)
    with pytest.raises(InsecureTransportError):
        client.get_session_logs_via_oauth("s", "tok", "org")
    with pytest.raises(InsecureTransportError):
        client.get_teleport_events("s", "tok", "org")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/s",
        "http://127.8.9.10/s",
        "http://[::1]:8080/s",
        "http://localhost/s",
        "http://LOCALHOST:9/s",
        "https://example.com/s",
    ],
)
def test_loopback_and_https_are_allowed(url):
    assert check_url(url, allow_insecure_http=False) == url


def test_plain_http_is_allowed_when_asked_for():
    assert check_url("http://example.com/s", allow_insecure_http=True) == "http://example.com/s"
    with pytest.raises(InsecureTransportError):
        check_url("http://example.com/s", allow_insecure_http=False)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://h/s",
        "not a url",
        "http://u:p@127.0.0.1/s",
        "https://",
        "http://h:x/",
        # host names the resolver or httpx cannot encode: refused up front with
        # InvalidURLError, not a UnicodeError from inside the first request
        "https://" + "a" * 70 + ".example/s",
        "https://xn--/s",
    ],
)
def test_malformed_urls_are_refused(client, ingress_server, url):
    with pytest.raises(InvalidURLError):
        client.append_session_log("s", entry(), url)
    with pytest.raises(InvalidURLError):
        client.get_session_logs("s", url)
    assert ingress_server.requests == []


@pytest.mark.parametrize("bad", ["", "tok\nen", "tok en"])
def test_bad_oauth_arguments_are_refused(client, ingress_server, bad):
    with pytest.raises(ValueError):
        client.get_session_logs_via_oauth("s", bad, "org")
    with pytest.raises(ValueError):
        client.get_teleport_events("s", "tok", bad)
    assert ingress_server.requests == []


# --- the token never leaks ---------------------------------------------------


def test_token_never_appears_in_logs_reprs_exceptions_or_diagnostics(
    make_client, ingress_server, diagnostics, caplog
):
    secret = f"sk-secret-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    texts: list[str] = []

    def capture(exc: BaseException) -> None:
        texts.append(str(exc))
        texts.append(repr(exc))
        texts.extend(traceback.format_exception(exc))

    # a wrong token (the secret) is sent and refused
    wrong = make_client(token=secret, retry_policy=RetryPolicy(max_attempts=2, base_delay=0.001))
    texts.append(repr(wrong))
    texts.append(repr(wrong.client))
    texts.append(repr(wrong.client._settings))
    texts.append(repr(wrong.client._host))
    assert wrong.append_session_log("s", entry()) is False
    pending = wrong.begin_append("s", entry())
    texts.append(repr(pending))
    texts.append(repr(wrong.request_for(pending)))
    with pytest.raises(SessionExpiredError) as info:
        wrong.get_session_logs("s")
    capture(info.value)
    with pytest.raises(SessionExpiredError) as info:
        wrong.get_teleport_events("s", secret, ingress_server.org_uuid)
    capture(info.value)
    with pytest.raises(SessionExpiredError) as info:
        wrong.get_session_logs_via_oauth("s", secret, ingress_server.org_uuid)
    capture(info.value)

    # a token source that raises with the secret in its message
    def leaky() -> str:
        raise RuntimeError(f"vault said {secret}")

    assert make_client(token=leaky).append_session_log("s", entry()) is False
    # a token that is not a valid header value (it would be echoed by h11)
    assert make_client(token=secret + "\n").append_session_log("s", entry()) is False
    # the right token over a failing transport
    good = make_client(token=ingress_server.token)
    ingress_server.faults.fail_next(1)
    assert good.append_session_log("s", entry())
    with pytest.raises(InsecureTransportError) as insecure:
        wrong.append_session_log("s", entry(), "http://example.com/x")
    capture(insecure.value)

    for record in caplog.records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            capture(record.exc_info[1])
    texts.append(caplog.text)
    texts.append(repr(diagnostics.events))
    leaks = [t for t in texts if secret in t]
    assert leaks == []
    assert caplog.records  # debug logging did happen, so the scan saw something


# --- lifecycle ---------------------------------------------------------------


def test_context_manager_closes_only_what_it_opened(ingress_server):
    pm = new_plugin_manager(load_entrypoints=False)
    with SessionIngressClient("t", base_api_url=ingress_server.base_url, plugins=pm) as owned:
        http = owned._http
    assert http.is_closed
    shared = httpx.Client()
    with SessionIngressClient("t", http_client=shared, plugins=pm):
        pass
    assert not shared.is_closed
    shared.close()


def test_async_context_manager_closes_only_what_it_opened(ingress_server):
    import asyncio

    pm = new_plugin_manager(load_entrypoints=False)

    async def main() -> None:
        async with AsyncSessionIngressClient("t", plugins=pm) as owned:
            http = owned._http
        assert http.is_closed
        shared = httpx.AsyncClient()
        async with AsyncSessionIngressClient("t", http_client=shared, plugins=pm):
            pass
        assert not shared.is_closed
        c = AsyncSessionIngressClient("t", http_client=shared, plugins=pm)
        await c.close()
        assert not shared.is_closed
        await shared.aclose()

    asyncio.run(main())


def test_closed_client_refuses_work(client):
    if client.is_async:
        client.aclose()
    else:
        client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.append_session_log("s", entry())


@pytest.mark.parametrize("cls", [SessionIngressClient, AsyncSessionIngressClient])
def test_one_name_per_argument_the_old_aliases_name_the_right_one(cls):
    pm = new_plugin_manager(load_entrypoints=False)
    policy = RetryPolicy(max_attempts=3)
    assert cls("t", retry_policy=policy, plugins=pm).retry_policy is policy
    name = cls.__name__
    with pytest.raises(TypeError, match=rf"{name}\(\) .*'retry' \(did you mean 'retry_policy'\?\)"):
        cls("t", retry=policy, plugins=pm)
    with pytest.raises(TypeError, match=r"'client' \(did you mean 'http_client'\?\)"):
        cls("t", client=None, plugins=pm)
    with pytest.raises(TypeError, match=r"'read_timout' \(did you mean 'read_timeout'\?\)"):
        cls("t", read_timout=3, plugins=pm)


def test_constructor_argument_types(ingress_server):
    pm = new_plugin_manager(load_entrypoints=False)
    with pytest.raises(TypeError):
        SessionIngressClient("t", http_client=object(), plugins=pm)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SessionIngressClient(42, plugins=pm)  # type: ignore[arg-type]


def test_clear_session_forgets_the_head(client, ingress_server):
    assert client.append_session_log("s", entry())
    assert client.append_session_log("t", entry())
    client.clear_session("s")
    assert client.append_session_log("s", entry()) is True  # 409 then adopt
    client.clear_all_sessions()
    assert client.append_session_log("t", entry()) is True
    records = ingress_server.wait_for_requests(6)
    assert [(r.session_id, r.last_uuid is None, r.status) for r in records[2:]] == [
        ("s", True, 409),
        ("s", False, 200),
        ("t", True, 409),
        ("t", False, 200),
    ]
