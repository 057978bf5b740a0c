"""Reading the MLflow store for the analysis commands (`status`, `figures`, `plan`): one query per question.

A SQLite store that exists is read with plain SQL over MLflow's own tables (runs, tags, params, latest_metrics, metrics,
experiments), read-only, with MLflow's semantics: deleted runs and experiments left out, runs ordered by start
time then run id, a NaN metric read back as NaN, a run's metrics its latest values. Any other store (an MLflow
server, PostgreSQL) goes through MlflowClient with the same questions. Both give the same records
(tests/test_store_reader.py compares them run by run on a real store), so a caller never knows which it used —
but the SQLite path answers without importing MLflow (0.8 s) or SQLAlchemy's object loading (about 1 s for a
hundred runs).

    reader = StoreReader("sqlite:///results/store/mlflow.db")
    runs = reader.runs([reader.experiment_id("fig9_residual")], tag="xablate.variant")
    history = reader.metric_history([r.info.run_id for r in runs], ["loss"])
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    run_name: str | None
    status: str
    start_time: int | None   # ms since the epoch
    end_time: int | None
    experiment_id: str
    artifact_uri: str | None = None


@dataclass(frozen=True)
class RunData:
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # each key's latest value
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """A run as `MlflowClient.search_runs` returns it, for the attributes xablate reads."""

    info: RunInfo
    data: RunData


@dataclass(frozen=True)
class MetricPoint:
    run_id: str
    key: str
    step: int
    value: float
    timestamp: int


class StoreReader:
    """The questions the analysis asks of a store, answered by SQL for SQLite and by MlflowClient otherwise.

    Filters: `tag` keeps runs that carry that tag with a non-empty value (MLflow's ``tags.`k` != ''``),
    `tag_equals` runs whose tag equals a value, `status` runs in that MLflow status.
    """

    def __init__(self, uri: str):
        self.uri = uri
        path = Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
        # a store not created yet goes through MLflow, which creates it, as every read did before this reader
        self.path = path if path is not None and path.is_file() and path.stat().st_size else None
        self._client = None
        self._connection: sqlite3.Connection | None = None

    # -- experiments -------------------------------------------------------------------------------------------
    def experiment_id(self, name: str) -> str | None:
        """The id of the experiment called `name` (any lifecycle stage, as MLflow's get_experiment_by_name)."""
        if self.path is None:
            found = self.client.get_experiment_by_name(name)
            return None if found is None else found.experiment_id
        row = self._sql("SELECT experiment_id FROM experiments WHERE name = ?", [name]).fetchone()
        return None if row is None else str(row[0])

    def experiments(self) -> dict[str, str]:
        """{name: id} of the active experiments, in MLflow's order."""
        if self.path is None:
            return {e.name: e.experiment_id for e in self.client.search_experiments()}
        rows = self._sql("SELECT name, experiment_id FROM experiments WHERE lifecycle_stage = 'active' "
                         "ORDER BY creation_time DESC, experiment_id ASC").fetchall()
        return {name: str(experiment_id) for name, experiment_id in rows}

    # -- runs --------------------------------------------------------------------------------------------------
    def runs(self, experiment_ids: list[str], *, tag: str | None = None, tag_equals: tuple[str, str] | None = None,
             status: str | None = None, newest_first: bool = False, limit: int | None = None) -> list[RunRecord]:
        """The active runs of these experiments that pass the filters, oldest first (or newest first)."""
        experiment_ids = [str(e) for e in experiment_ids if e is not None]
        if not experiment_ids:
            return []
        if self.path is None:
            return self._client_runs(experiment_ids, tag, tag_equals, status, newest_first, limit)
        where, args = self._where(experiment_ids, tag, tag_equals, status)
        order = "DESC" if newest_first else "ASC"
        heads = self._sql(f"SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time, r.experiment_id, "
                          f"r.artifact_uri "
                          f"FROM runs r WHERE {where} ORDER BY (r.start_time IS NULL), r.start_time {order}, "
                          f"r.run_uuid" + (f" LIMIT {int(limit)}" if limit else ""), args).fetchall()
        if not heads:
            return []
        chosen = [row[0] for row in heads]  # only these runs' params, tags and metrics (limit=1 reads one run's)
        params = self._by_run("SELECT run_uuid, key, value FROM params WHERE run_uuid IN ({})", chosen)
        tags = self._by_run("SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({})", chosen)
        metrics = self._by_run("SELECT run_uuid, key, CASE WHEN is_nan THEN NULL ELSE value END, is_nan "
                               "FROM latest_metrics WHERE run_uuid IN ({})", chosen, metric=True)
        return [RunRecord(RunInfo(run_id, name, state, start, end, str(experiment), artifacts),
                          RunData(params.get(run_id, {}), metrics.get(run_id, {}), tags.get(run_id, {})))
                for run_id, name, state, start, end, experiment, artifacts in heads]

    def metric_history(self, run_ids: list[str], keys: list[str]) -> list[MetricPoint]:
        """Every logged point of these metrics of these runs, per run and key in MLflow's order (timestamp, step,
        value)."""
        if not run_ids or not keys:
            return []
        if self.path is None:
            return [MetricPoint(run_id, key, p.step, p.value, p.timestamp)
                    for run_id in run_ids for key in keys for p in self.client.get_metric_history(run_id, key)]
        points = self._in_chunks(f"SELECT run_uuid, key, step, value, is_nan, timestamp FROM metrics "
                                 f"WHERE run_uuid IN ({{}}) AND key IN ({','.join('?' * len(keys))}) "
                                 f"ORDER BY run_uuid, key, timestamp, step, value", list(run_ids), keys)
        order = {run_id: i for i, run_id in enumerate(run_ids)}
        points.sort(key=lambda p: (order[p[0]], keys.index(p[1])))  # stable: MLflow's order within a run and key
        return [MetricPoint(run_id, key, int(step), math.nan if is_nan else float(value), int(timestamp))
                for run_id, key, step, value, is_nan, timestamp in points]

    # -- SQLite ------------------------------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.uri)
        return self._client

    def _sql(self, query: str, args=()):
        if self._connection is None:  # read-only: reading must never create or migrate a store
            self._connection = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        return self._connection.execute(query, list(args))

    @staticmethod
    def _where(experiment_ids, tag, tag_equals, status) -> tuple[str, list]:
        where = [f"r.experiment_id IN ({','.join('?' * len(experiment_ids))})", "r.lifecycle_stage = 'active'"]
        args: list = [int(e) for e in experiment_ids]
        if tag is not None:
            where.append("EXISTS (SELECT 1 FROM tags t WHERE t.run_uuid = r.run_uuid AND t.key = ? AND t.value != '')")
            args.append(tag)
        if tag_equals is not None:
            where.append("EXISTS (SELECT 1 FROM tags t WHERE t.run_uuid = r.run_uuid AND t.key = ? AND t.value = ?)")
            args += list(tag_equals)
        if status is not None:
            where.append("r.status = ?")
            args.append(status)
        return " AND ".join(where), args

    def _in_chunks(self, query: str, run_ids: list[str], extra: list = ()) -> list[tuple]:
        """`query` (its run-id list as `{}`) over the ids 500 at a time: SQLite's limit on bound parameters."""
        rows = []
        for start in range(0, len(run_ids), 500):
            chunk = run_ids[start:start + 500]
            rows += self._sql(query.format(",".join("?" * len(chunk))), [*chunk, *extra]).fetchall()
        return rows

    def _by_run(self, query: str, run_ids: list[str], metric: bool = False) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for row in self._in_chunks(query, run_ids):
            found.setdefault(row[0], {})[row[1]] = (math.nan if row[3] else float(row[2])) if metric else row[2]
        return found

    # -- any other store ---------------------------------------------------------------------------------------
    def _client_runs(self, experiment_ids, tag, tag_equals, status, newest_first, limit) -> list[RunRecord]:
        filters = []
        if tag is not None:
            filters.append(f"tags.`{tag}` != ''")
        if tag_equals is not None:
            filters.append(f"tags.`{tag_equals[0]}` = '{tag_equals[1]}'")
        if status is not None:
            filters.append(f"attributes.status = '{status}'")
        runs = self.client.search_runs(experiment_ids, filter_string=" and ".join(filters),
                                       order_by=[f"attributes.start_time {'DESC' if newest_first else 'ASC'}"],
                                       max_results=limit or 50_000)
        return [RunRecord(RunInfo(r.info.run_id, r.info.run_name, r.info.status, r.info.start_time, r.info.end_time,
                                  r.info.experiment_id, r.info.artifact_uri),
                          RunData(dict(r.data.params), dict(r.data.metrics), dict(r.data.tags))) for r in runs]
