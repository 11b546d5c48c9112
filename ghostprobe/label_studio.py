"""A small client of Label Studio's documented REST API: the few calls the labelling loop makes.

Why not `label-studio-sdk` (2.1): beside `.[dev]` it resolves, but installs 36 packages, among them numpy 2.2 in
place of the project's 2.4, opencv-python-headless 4.12, nltk, black and isort (`pip install --dry-run
label-studio-sdk` in the project's venv), for a handful of HTTP calls. The calls below use the same documented
endpoints the SDK wraps; the tests answer tasks through the SDK itself, from Label Studio's own virtualenv.

Tokens: a personal access token (the default since Label Studio 1.19; a JWT refresh token) is exchanged at
`/api/token/refresh/` for an access token sent as `Bearer`, renewed when it expires; a legacy token (an
organisation may enable them) is sent as `Token`.
"""

from __future__ import annotations

import base64
import json

import requests


class LabelStudioError(RuntimeError):
    """A Label Studio call failed: the message names the call, the status and Label Studio's own words."""


class LabelStudio:
    """One Label Studio server, reached at `url` (e.g. http://localhost:8080) with a user's token."""

    def __init__(self, url: str, token: str, timeout_s: float = 120.0):
        if not token:
            raise LabelStudioError(
                f"{url}: no token: copy yours from Label Studio (Account & Settings > Personal "
                "Access Token) into token= or the LABEL_STUDIO_API_KEY environment variable"
            )
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._token = token
        self._session = requests.Session()
        self._is_personal_token = _is_jwt(token)
        self._authorize()

    def _authorize(self) -> None:
        if not self._is_personal_token:
            self._session.headers["Authorization"] = f"Token {self._token}"
            return
        reply = self._session.post(
            f"{self.url}/api/token/refresh/", json={"refresh": self._token}, timeout=self.timeout_s
        )
        if reply.status_code != 200:
            raise LabelStudioError(
                f"{self.url}: the personal access token was refused ({reply.status_code}: "
                f"{_words(reply)}); create a new one under Account & Settings"
            )
        self._session.headers["Authorization"] = f"Bearer {reply.json()['access']}"

    def call(self, method: str, path: str, **kwargs):
        """One API call; the JSON reply (None when empty). An expired access token is renewed once."""
        reply = self._session.request(method, f"{self.url}{path}", timeout=self.timeout_s, **kwargs)
        if reply.status_code == 401 and self._is_personal_token:  # access tokens live minutes; renew and retry
            self._authorize()
            reply = self._session.request(method, f"{self.url}{path}", timeout=self.timeout_s, **kwargs)
        if reply.status_code >= 400:
            hint = (
                " (a legacy token is refused unless the organisation enables legacy tokens: use a personal "
                "access token)"
                if reply.status_code == 401 and not self._is_personal_token
                else ""
            )
            raise LabelStudioError(f"{method} {self.url}{path}: {reply.status_code}: {_words(reply)}{hint}")
        return reply.json() if reply.content else None

    def find_project(self, title: str) -> dict | None:
        """The project titled exactly `title` (None when there is none)."""
        page = 1
        while True:
            reply = self.call("GET", "/api/projects/", params={"title": title, "page": page, "page_size": 100})
            for project in reply["results"]:
                if project["title"] == title:
                    return project
            if not reply.get("next"):
                return None
            page += 1

    def project(self, title_or_id: str | int) -> dict:
        """A project by title or numeric id; LabelStudioError naming both when it is not there."""
        if isinstance(title_or_id, int) or str(title_or_id).isdigit():
            return self.call("GET", f"/api/projects/{int(title_or_id)}/")
        project = self.find_project(str(title_or_id))
        if project is None:
            raise LabelStudioError(f"{self.url}: no project titled {title_or_id!r}")
        return project

    def create_or_update_project(self, title: str, settings: dict) -> tuple[dict, bool]:
        """The project titled `title` with these settings (label_config, ...): created, or updated in place.
        Returns (project, created)."""
        project = self.find_project(title)
        if project is None:
            return self.call("POST", "/api/projects/", json={"title": title, **settings}), True
        return self.call("PATCH", f"/api/projects/{project['id']}/", json=settings), False

    def ensure_local_storage(self, project_id: int, path: str, title: str) -> None:
        """A local-files source storage on `path` (absolute, under the server's LOCAL_FILES_DOCUMENT_ROOT): Label
        Studio serves /data/local-files/?d=... only to projects holding a storage that covers the file's folder."""
        storages = self.call("GET", "/api/storages/localfiles/", params={"project": project_id})
        if any(path == s["path"] or path.startswith(s["path"].rstrip("/") + "/") for s in storages):
            return
        self.call(
            "POST",
            "/api/storages/localfiles/",
            json={"project": project_id, "path": path, "title": title, "use_blob_urls": True},
        )

    def export_tasks(self, project_id: int) -> list[dict]:
        """Every task of the project with its annotations (reviewed or not), as Label Studio's JSON export."""
        return self.call(
            "GET", f"/api/projects/{project_id}/export", params={"exportType": "JSON", "download_all_tasks": "true"}
        )

    def import_tasks(self, project_id: int, tasks: list[dict]) -> int:
        """Add tasks (with their predictions); the number Label Studio added."""
        return self.call("POST", f"/api/projects/{project_id}/import", json=tasks)["task_count"]

    def update_task_data(self, task_id: int, data: dict) -> None:
        """Replace a task's data (its annotations and predictions stay)."""
        self.call("PATCH", f"/api/tasks/{task_id}/", json={"data": data})

    def user_emails(self) -> dict[int, str]:
        """User id -> email, to name reviewers (an export names them by id)."""
        return {user["id"]: user["email"] for user in self.call("GET", "/api/users/")}


def _is_jwt(token: str) -> bool:
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except ValueError:
        return False
    return isinstance(header, dict) and "alg" in header


def _words(reply: requests.Response) -> str:
    try:
        body = reply.json()
    except ValueError:
        return reply.text[:300] or reply.reason
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("validation_errors") or body)[:300]
    return str(body)[:300]
