"""ingress-logging plugin: OAuth bearer token and organization headers supplied by the host.

Inert until ``INGRESS_LOGGING_OAUTH_TOKEN`` (and ``INGRESS_LOGGING_OAUTH_ORG_UUID``)
or ``INGRESS_LOGGING_OAUTH_FILE`` is set; see the README for the file format.
The seed sends these on the OAuth read (``GET .../session_ingress/session/{id}``)
and on the teleport-events pages.
"""

from __future__ import annotations

from ingress_logging.hookspecs import hookimpl

from ._credentials import anthropic_version, current_credentials

__all__ = ["ingress_auth_token", "ingress_request_headers"]


@hookimpl
def ingress_auth_token(session_id: str) -> str | None:
    """The OAuth access token, or None (pass) when the host supplied none."""
    return current_credentials().access_token


@hookimpl
def ingress_request_headers(session_id: str) -> dict[str, str] | None:
    """``anthropic-version`` and ``x-organization-uuid`` while an access token is configured."""
    creds = current_credentials()
    if creds.access_token is None:
        return None
    headers = {"anthropic-version": anthropic_version()}
    if creds.organization_uuid is not None:
        headers["x-organization-uuid"] = creds.organization_uuid
    return headers
