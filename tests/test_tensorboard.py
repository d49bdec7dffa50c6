"""The dashboard is the user's real interface: serve a finished run with the real TensorBoard
server on loopback and read the run's val/accuracy curve back through its HTTP data API."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_tensorboard_serves_the_val_accuracy_curve(run_cfg, tmp_path):
    outputs = tmp_path / "outputs"
    res = run_cfg(outputs, "model=lstm", "train.epochs=4", "train.target_accuracy=null", name="qrsu-easy_lstm")
    port = free_port()
    exe = shutil.which("tensorboard") or os.path.join(os.path.dirname(sys.executable), "tensorboard")
    server = subprocess.Popen([exe, "--logdir", str(outputs), "--host", "127.0.0.1", "--port", str(port),
                               "--load_fast=false", "--reload_interval=1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline, runs = time.time() + 90, []
        while time.time() < deadline and "qrsu-easy_lstm" not in runs:
            time.sleep(1)
            try:
                runs = get_json(f"{base}/data/runs")
            except OSError:
                continue
        assert "qrsu-easy_lstm" in runs, runs
        query = urllib.parse.urlencode({"run": "qrsu-easy_lstm", "tag": "val/accuracy"})
        points = get_json(f"{base}/data/plugin/scalars/scalars?{query}")
        assert [step for _, step, _ in points] == [1, 2, 3, 4]
        expected = [h["val/accuracy"] for h in res["history"]]
        assert [value for _, _, value in points] == pytest.approx(expected, abs=1e-6)
    finally:
        server.terminate()
        server.wait(timeout=20)
