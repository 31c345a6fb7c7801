"""The web console: its page and assets under /console, and its session endpoints.

The page is one HTML file with local CSS and JavaScript (no CDN, no build step); it calls
the management API with the session cookie, so the API enforces every role.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from opennsps.console.sessions import COOKIE, Session, SessionRefused, Sessions
from opennsps.console.throttle import LoginThrottle
from opennsps.domain.values import NO_NUL
from opennsps.http_errors import error_response
from opennsps.logging import get_logger

STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

log = get_logger("opennsps.console")
router = APIRouter(prefix="/console", include_in_schema=False)


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    password: str = Field(min_length=1, max_length=1024)


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.console_sessions
    return sessions


def _session_body(session: Session) -> dict[str, str]:
    return {"user": session.caller.name, "role": session.caller.role, "csrf": session.csrf}


@router.get("")
def console_root() -> Response:
    return RedirectResponse("/console/", status_code=308)


@router.get("/")
def console_page() -> Response:
    return FileResponse(STATIC / "index.html", headers=SECURITY_HEADERS)


@router.post("/login")
def login(request: Request, body: Login) -> Response:
    sessions = _sessions(request)
    per_user: LoginThrottle = request.app.state.login_throttle_user
    per_address: LoginThrottle = request.app.state.login_throttle_address
    user_key = body.username.lower()
    address = request.client.host if request.client else ""
    wait = max(per_user.wait_seconds(user_key), per_address.wait_seconds(address))
    if wait > 0:
        log.warning("console login refused: too many failures", user=body.username)
        return error_response(
            429,
            f"too many failed logins; try again in {int(wait) + 1} s",
            "too_many_attempts",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    user = sessions.users.verify(body.username, body.password)
    if user is None:
        per_user.failed(user_key)
        per_address.failed(address)
        log.warning("console login refused", user=body.username)
        return error_response(401, "wrong user name or password", "unauthorized")
    per_user.succeeded(user_key)
    agent = request.headers.get("user-agent", "")
    token, session = sessions.issue(user, f"{address} {agent}".strip())
    log.info("console login", user=user.username, role=user.role)
    answer = JSONResponse(_session_body(session), headers={"Cache-Control": "no-store"})
    answer.set_cookie(
        COOKIE,
        token,
        max_age=int(sessions.lifetime),  # the store ends it earlier when unused
        httponly=True,
        samesite="strict",
        secure=request.app.state.settings.console.secure_cookie,
        path="/",
    )
    return answer


@router.post("/logout")
def logout(request: Request) -> Response:
    """End the session in the store (a copy of the cookie is refused from now on)."""
    ended = _sessions(request).end(request.cookies.get(COOKIE))
    if ended:
        log.info("console logout")
    answer = JSONResponse({"logged_out": True})
    answer.delete_cookie(COOKIE, path="/")
    return answer


@router.get("/session")
def current_session(request: Request) -> Response:
    try:
        session = _sessions(request).read(request.cookies.get(COOKIE))
    except SessionRefused as exc:
        return error_response(401, str(exc), "unauthorized")
    return JSONResponse(_session_body(session), headers={"Cache-Control": "no-store"})


def console_assets() -> StaticFiles:
    return StaticFiles(directory=STATIC)
