"""A small Python client for the hqray HTTP API."""

from __future__ import annotations

from typing import Any

import httpx

from hqray.errors import HqrayError

__all__ = ["HqrayClient", "ServerError"]


class ServerError(HqrayError):
    """The server answered with an error; ``status``, ``code`` and ``details`` come from its body."""

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.details = status, code, details


class HqrayClient:
    """``HqrayClient("http://127.0.0.1:8000", api_key=None).predict("iris", [[...]])``."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, timeout: float = 30.0):
        headers = {"x-api-key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def _check(self, response: httpx.Response) -> dict:
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except Exception:  # not our schema (e.g. a proxy's 503)
                error = {"code": "http_error", "message": response.text[:200], "details": None}
            raise ServerError(response.status_code, error["code"], error["message"], error.get("details"))
        return response.json()

    def predict(self, model: str, instances: list) -> dict:
        return self._check(self._http.post(f"/v1/models/{model}:predict", json={"instances": instances}))

    def models(self) -> list[dict]:
        return self._check(self._http.get("/v1/models"))["models"]

    def health(self) -> dict:
        return self._check(self._http.get("/healthz"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HqrayClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
