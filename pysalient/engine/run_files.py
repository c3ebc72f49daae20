"""The run directory of a training run and the logs inside it.

``runs/train/exp``, ``exp2``, ``exp3``... (the first free name) holds ``last.pth`` / ``best.pth`` (training
checkpoints), ``weights.pth`` (the final model), ``config.json`` (the TrainConfig), ``metrics.jsonl`` (one
JSON record per log step) and ``results.csv`` (one row per validation).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Union

from pysalient.utils.atomic import atomic_write_bytes

METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.csv"
LAST_CHECKPOINT = "last.pth"
BEST_CHECKPOINT = "best.pth"
FINAL_WEIGHTS = "weights.pth"
CONFIG_FILE = "config.json"


def remove_stale_temporaries(run_dir: Union[str, os.PathLike]) -> List[Path]:
    """Deletes the temporaries of interrupted atomic writes in ``run_dir``; returns what it deleted.

    A process killed (SIGKILL, power loss) while it writes ``last.pth`` leaves ``.last.pth.<random>.tmp`` behind
    (see :func:`pysalient.utils.atomic.atomic_write`): the complete previous file is still in place, and the
    temporary would otherwise stay forever. Only hidden ``.<file>.<random>.tmp`` names are touched. Call it when no
    other process writes into ``run_dir`` (a resumed run, on its main process, before training).
    """
    stale = sorted(path for path in Path(run_dir).glob(".*.tmp") if path.is_file())
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def new_run_dir(project: Union[str, os.PathLike], name: str, exist_ok: bool = False) -> Path:
    """Creates and returns ``project/name``, or the first free ``project/name2``, ``name3``...

    With ``exist_ok`` an existing ``project/name`` is reused. Creation is atomic (``mkdir``), so two runs
    started together never share a directory.
    """
    if not name or Path(name).name != name:
        raise ValueError(f"run name must be a plain folder name, got {name!r}")
    root = Path(project)
    root.mkdir(parents=True, exist_ok=True)
    if exist_ok:
        (root / name).mkdir(exist_ok=True)
        return root / name
    number = 1
    while True:
        candidate = root / (name if number == 1 else f"{name}{number}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1


def latest_run_checkpoint(project: Union[str, os.PathLike], name: str) -> Path:
    """The most recently written ``last.pth`` among ``project/name``, ``project/name2``, ...

    Raises:
        FileNotFoundError: no such run has a ``last.pth`` (the message lists where it looked).
    """
    pattern = re.compile(rf"^{re.escape(name)}\d*$")
    root = Path(project)
    found = [run / LAST_CHECKPOINT for run in root.glob(f"{name}*") if pattern.match(run.name)]
    found = [path for path in found if path.is_file()]
    if not found:
        raise FileNotFoundError(f"resume=True: no {LAST_CHECKPOINT} in {root / name}* to resume from")
    return max(found, key=lambda path: path.stat().st_mtime_ns)


class RunLogs:
    """Appends training records to ``metrics.jsonl`` and validation rows to ``results.csv``.

    Args:
        run_dir: the run directory.
    """

    def __init__(self, run_dir: Union[str, os.PathLike]) -> None:
        self.run_dir = Path(run_dir)
        self.metrics_path = self.run_dir / METRICS_FILE
        self.results_path = self.run_dir / RESULTS_FILE

    def log_metrics(self, record: Mapping[str, Any]) -> None:
        """Appends one JSON line (flushed, so a crash loses at most the line being written)."""
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(dict(record), sort_keys=False) + "\n")

    def log_results(self, row: Mapping[str, Any]) -> None:
        """Adds a row to ``results.csv`` (rewritten atomically; new columns extend the header)."""
        rows = self.read_results()
        rows.append({key: _csv_value(value) for key, value in row.items()})
        columns: List[str] = []
        for existing in rows:
            columns.extend(key for key in existing if key not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        _write_text_atomic(self.results_path, buffer.getvalue())

    def read_results(self) -> List[Dict[str, str]]:
        """The rows of ``results.csv`` as string dicts (empty when there is no file yet)."""
        if not self.results_path.is_file():
            return []
        with open(self.results_path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    def read_metrics(self) -> List[Dict[str, Any]]:
        """The records of ``metrics.jsonl`` (a torn last line, from a crash while writing it, is skipped)."""
        if not self.metrics_path.is_file():
            return []
        records = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def truncate_after(self, iteration: int) -> None:
        """Drops records past ``iteration`` (written after the checkpoint a resumed run restarts from)."""
        if self.metrics_path.is_file():
            kept = [record for record in self.read_metrics() if record.get("iteration", 0) <= iteration]
            _write_text_atomic(self.metrics_path, "".join(json.dumps(record) + "\n" for record in kept))
        if self.results_path.is_file():
            rows = self.read_results()
            kept_rows = [row for row in rows if int(float(row.get("iteration") or 0)) <= iteration]
            if len(kept_rows) != len(rows):
                self.results_path.unlink()
                for row in kept_rows:
                    self.log_results(row)

    def write_config(self, config: Mapping[str, Any]) -> Path:
        """Writes the run's config as ``config.json`` (atomically)."""
        path = self.run_dir / CONFIG_FILE
        _write_text_atomic(path, json.dumps(dict(config), indent=2) + "\n")
        return path


def _csv_value(value: Any) -> Any:
    return f"{value:.5g}" if isinstance(value, float) else value


def _write_text_atomic(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
