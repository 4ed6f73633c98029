"""A small client of the Airflow 3 REST API (v2): trigger a DAG run and wait for its outcome."""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

from ops import services


@dataclass
class AirflowAPI:
    """Token-authenticated calls to the local api-server (simple auth manager login)."""

    base: str
    token: str

    @classmethod
    def login(cls, port: int | None = None) -> AirflowAPI:
        port = port or services.settings_mod.load().airflow_port
        base = f"http://127.0.0.1:{port}"
        user, password = services.airflow_login()
        resp = requests.post(
            f"{base}/auth/token", json={"username": user, "password": password}, timeout=10
        )
        resp.raise_for_status()
        return cls(base, resp.json()["access_token"])

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        resp = requests.request(
            method,
            f"{self.base}/api/v2{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        if not resp.ok:
            raise RuntimeError(f"Airflow API {method} {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json() if resp.content else {}

    def wait_for_dag(self, dag_id: str, deadline_s: float = 180, unpause: bool = True) -> None:
        """Poll until the dag-processor has parsed `dag_id` (it runs on its own schedule), then
        unpause it unless told not to."""

        def parsed():
            try:
                return self.call("GET", f"/dags/{dag_id}")
            except RuntimeError:
                return None

        services.wait_until(parsed, deadline_s, f"DAG {dag_id} parsed by Airflow", None, 3)
        if unpause:
            self.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        run = self.call(
            "POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}}
        )
        return run["dag_run_id"]

    def wait_for_run(
        self, dag_id: str, run_id: str, deadline_s: float = 3600, progress: bool = True
    ) -> dict:
        """Poll the run until it ends; print task progress as it goes (unless told not to)."""
        end = time.monotonic() + deadline_s
        seen: dict[str, str] = {}
        while time.monotonic() < end:
            run = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            tasks = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
            for ti in tasks.get("task_instances", []):
                state = ti.get("state") or "queued"
                if progress and seen.get(ti["task_id"]) != state:
                    seen[ti["task_id"]] = state
                    print(f"  {dag_id}.{ti['task_id']}: {state}", flush=True)
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(3)
        raise TimeoutError(f"{dag_id} run {run_id} did not finish in {deadline_s:.0f} s")

    def run_and_wait(self, dag_id: str, conf: dict | None = None, deadline_s: float = 3600) -> dict:
        self.wait_for_dag(dag_id)
        run_id = self.trigger(dag_id, conf)
        print(f"triggered {dag_id} run {run_id}", flush=True)
        return self.wait_for_run(dag_id, run_id, deadline_s)
