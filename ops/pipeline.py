"""`make pipeline`: ingestion, then training and publishing, once, now, through Airflow.

Triggers the DAG runs through the Airflow API (so they show in the UI like any manual run),
waits for each outcome and exits non-zero naming the failed run.
"""

from __future__ import annotations

import argparse
import json
import sys

from ops.airflow_api import AirflowAPI

STEPS = ("movielog_ingest", "catalog_sync", "train_and_publish")


def run(steps=STEPS, conf: dict | None = None) -> int:
    api = AirflowAPI.login()
    for dag_id in steps:
        outcome = api.run_and_wait(dag_id, (conf or {}).get(dag_id))
        print(f"{dag_id}: {outcome['state']}", flush=True)
        if outcome["state"] != "success":
            print(
                f"error: {dag_id} run {outcome['dag_run_id']} failed; see the Airflow UI "
                "or .var/airflow/logs",
                file=sys.stderr,
            )
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.pipeline", description=__doc__)
    parser.add_argument("--only", nargs="*", choices=STEPS, help="run only these DAGs, in order")
    parser.add_argument("--conf", default="{}", help='JSON: {"dag_id": {param: value}}')
    args = parser.parse_args(argv)
    return run(tuple(args.only or STEPS), json.loads(args.conf))


if __name__ == "__main__":
    sys.exit(main())
