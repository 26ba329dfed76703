#!/usr/bin/env bash
# Model serving benchmark: KEA's SklearnModel vs MLServer's own SKLearnModel (mlserver-sklearn),
# both on the same MLServer 1.7, the same joblib file and the same request body, measured with
# wrk in one run on this machine (interleaved rounds, medians).
#
#   bench/model-server.sh [--duration SECS] [--rounds N] [--threads N] [--connections N]
#                         [--models iris,wide] [--write bench/README.md]
#
# Models: `iris` = LogisticRegression on iris, request 1x4 FP32 (a typical tabular call: the
# server's per-request overhead dominates); `wide` = LogisticRegression on 784 features
# (MNIST-sized rows, 10 classes, synthetic data), request 1x784 FP32 (JSON decoding matters).
# Each server runs with parallel_workers=1 (MLServer's default: inference in a worker process) and
# parallel_workers=0 (what KEA ships: inference in the server process).
# After the wrk runs, the same two model classes are also timed in-process (request parsing +
# predict(), no HTTP), interleaved, which isolates what differs between them from the server
# and from other load on the machine.
# --write replaces the table between <!-- model-serving:start --> and <!-- model-serving:end -->.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
venv=$("$KEA_ROOT/scripts/runtime-test.sh" --venv)
exec "$venv/bin/python" - "$@" <<'PY'
"""Trains the models, writes the model folders, runs the servers one at a time under wrk."""

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import joblib
import numpy as np

from kea_runtime.package import write_model_folder

ap = argparse.ArgumentParser()
ap.add_argument("--duration", type=int, default=10)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--connections", type=int, default=16)
ap.add_argument("--models", default="iris,wide")
ap.add_argument("--write")
args = ap.parse_args()
root = Path(os.environ["KEA_ROOT"])
work = Path(tempfile.mkdtemp(prefix="kea-bench-model-"))
mlserver = str(Path(sys.executable).with_name("mlserver"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(kind):
    from sklearn.linear_model import LogisticRegression

    if kind == "iris":
        from sklearn.datasets import load_iris

        data = load_iris()
        x, y = data.data.astype(np.float32), data.target
        clf = LogisticRegression(max_iter=500).fit(x, y)
        return clf, x[:1]
    rng = np.random.default_rng(0)
    x = rng.random((2000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 2000)
    clf = LogisticRegression(max_iter=200).fit(x, y)
    return clf, x[:1]


def folders(kind, clf, row):
    base = work / kind
    (base / "artifacts").mkdir(parents=True)
    joblib.dump(clf, base / "artifacts" / "model.joblib")
    body = {
        "inputs": [
            {"name": "input-0", "shape": list(row.shape), "datatype": "FP32", "data": row.ravel().tolist()}
        ]
    }
    (base / "body.json").write_text(json.dumps(body))
    configs = []
    for pw in (1, 0):
        kea = write_model_folder(
            base / f"kea-pw{pw}",
            name=kind,
            framework="sklearn",
            uri=str(base / "artifacts"),
            inputs=[{"name": "input-0", "datatype": "FP32", "shape": [-1, row.shape[1]]}],
            outputs=[{"name": "predict", "datatype": "INT64", "shape": [-1]}],
            server_settings={"parallel_workers": pw},
        )
        configs.append((f"KEA SklearnModel, parallel_workers={pw}", "kea", pw, kea))
        ml = base / f"mlserver-pw{pw}"
        ml.mkdir()
        (ml / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": kind,
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": str(base / "artifacts" / "model.joblib")},
                }
            )
        )
        (ml / "settings.json").write_text(json.dumps({"parallel_workers": pw}))
        configs.append((f"MLServer SKLearnModel, parallel_workers={pw}", "mlserver", pw, ml))
    return base / "body.json", body, configs


def start(folder, name):
    settings = json.loads((folder / "settings.json").read_text())
    port = free_port()
    settings.update(http_port=port, grpc_port=free_port(), metrics_port=free_port(), host="127.0.0.1")
    settings["metrics_dir"] = str(folder / ".metrics")
    (folder / "settings.json").write_text(json.dumps(settings))
    log = (folder / "mlserver.log").open("ab")
    proc = subprocess.Popen(
        [mlserver, "start", str(folder)], stdout=log, stderr=subprocess.STDOUT, cwd=folder,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"mlserver for {folder} exited; see {folder / 'mlserver.log'}")
        try:
            if httpx.get(f"{url}/v2/models/{name}/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    sys.exit(f"mlserver for {folder} not ready")


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


LUA = """
local f = io.open(os.getenv("KEA_BENCH_BODY"), "r")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(url, body_path, duration):
    lua = work / "post.lua"
    lua.write_text(LUA)
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--latency", "-s", str(lua), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env=dict(os.environ, KEA_BENCH_BODY=str(body_path))).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        sys.exit(f"wrk saw errors against {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    return rps, p50, p99


results = {}
sections = []
for kind in args.models.split(","):
    clf, row = train(kind)
    body_path, body, configs = folders(kind, clf, row)
    expected = clf.predict(row).tolist()
    for _ in range(args.rounds):
        for label, who, pw, folder in configs:
            proc, url = start(folder, kind)
            try:
                infer = f"{url}/v2/models/{kind}/infer"
                reply = httpx.post(infer, json=body, timeout=10).json()
                assert reply["outputs"][0]["data"] == expected, reply
                wrk(infer, body_path, 2)  # warm-up
                results.setdefault((kind, label), []).append(wrk(infer, body_path, args.duration))
            finally:
                stop(proc)
            print(f"{kind}: {label}: {results[(kind, label)][-1]}", file=sys.stderr)
    sections.append((kind, [c[0] for c in configs]))

cpu = "unknown CPU"
try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
import mlserver  # noqa: E402

lines = [
    f"Machine: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, MLServer "
    f"{mlserver.__version__}; wrk -t{args.threads} -c{args.connections}, {args.rounds} interleaved "
    f"rounds of {args.duration} s after a 2 s warm-up; medians. Server and wrk share the machine.",
    "",
    "| model, request | server | req/s | p50 ms | p99 ms | KEA / MLServer req/s |",
    "|---|---|---:|---:|---:|---:|",
]
desc = {"iris": "iris LogisticRegression, 1×4 FP32", "wide": "784-feature LogisticRegression, 1×784 FP32"}
for kind, labels in sections:
    med = {}
    for label in labels:
        runs = results[(kind, label)]
        med[label] = tuple(statistics.median(r[i] for r in runs) for i in range(3))
    for label in labels:
        rps, p50, p99 = med[label]
        ratio = ""
        if label.startswith("KEA"):
            other = label.replace("KEA SklearnModel", "MLServer SKLearnModel")
            ratio = f"{rps / med[other][0]:.2f}×"
        lines.append(f"| {desc[kind]} | {label} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {ratio} |")


async def per_call(kind, n_calls=3000, rounds=5):
    """Median µs per InferenceRequest parse + predict() for each class, interleaved."""
    from mlserver.settings import ModelSettings
    from mlserver.types import InferenceRequest
    from mlserver_sklearn import SKLearnModel

    from kea_runtime.frameworks.sklearn import SklearnModel

    base = work / kind
    body = json.loads((base / "body.json").read_text())
    width = body["inputs"][0]["shape"][1]
    kea = SklearnModel(
        ModelSettings(
            name=kind,
            implementation=SklearnModel,
            inputs=[{"name": "input-0", "datatype": "FP32", "shape": [-1, width]}],
            outputs=[{"name": "predict", "datatype": "INT64", "shape": [-1]}],
            parameters={"uri": str(base / "artifacts")},
        )
    )
    ml = SKLearnModel(
        ModelSettings(
            name=kind,
            implementation=SKLearnModel,
            parameters={"uri": str(base / "artifacts" / "model.joblib")},
        )
    )
    await kea.load()
    await ml.load()
    times = {"kea": [], "mlserver": []}
    for _ in range(rounds):
        for who, model in (("kea", kea), ("mlserver", ml)):
            start = time.perf_counter()
            for _ in range(n_calls):
                await model.predict(InferenceRequest.model_validate(body))
            times[who].append((time.perf_counter() - start) / n_calls * 1e6)
    return statistics.median(times["kea"]), statistics.median(times["mlserver"])


import asyncio  # noqa: E402

lines += [
    "",
    "In-process, no HTTP: µs per request parse + `predict()` (median of 5 interleaved rounds of "
    "3000 calls; KEA's includes the signature check):",
    "",
    "| model, request | KEA SklearnModel µs | MLServer SKLearnModel µs | KEA / MLServer time |",
    "|---|---:|---:|---:|",
]
for kind, _ in sections:
    k, m = asyncio.run(per_call(kind))
    lines.append(f"| {desc[kind]} | {k:.0f} | {m:.0f} | {k / m:.2f}× |")
table = "\n".join(lines)
print(table)
if args.write:
    path = Path(args.write)
    text = path.read_text()
    start_mark, end_mark = "<!-- model-serving:start -->", "<!-- model-serving:end -->"
    if start_mark not in text:
        sys.exit(f"{path} has no {start_mark} marker")
    head, rest = text.split(start_mark, 1)
    _, tail = rest.split(end_mark, 1)
    path.write_text(f"{head}{start_mark}\n{table}\n{end_mark}{tail}")
PY
