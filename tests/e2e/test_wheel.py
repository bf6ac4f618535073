"""The project as a wheel, installed outside the checkout (what an image for the Kubernetes work
pool or the model server does): everything the code reads must ship inside the package."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def wheel_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv outside the checkout with the project's wheel installed.

    The wheel itself is installed (``--no-deps``); its dependencies are made importable from
    the test environment by a ``.pth`` line that comes after the venv's own site-packages, so
    the modelops under test is the wheel's copy (checked below) without reinstalling 1.2 GB of
    dependencies for every test run.
    """
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("modelops_flows-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    (site / "zz-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    yield python


def _run(python: Path, code: str, cwd: Path) -> str:
    done = subprocess.run(
        [str(python), "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_wheel_install_renders_every_manifest(wheel_python: Path, tmp_path: Path) -> None:
    out = _run(
        wheel_python,
        """
        import json, modelops
        from modelops.k8s.manifests import (ServingSpec, render_batch_job, render_serving,
                                            templates_root)
        from modelops.data import SAMPLE_DATA
        spec = ServingSpec(model_name="churn", version="2", namespace="ml", image="r/img:1",
                           tracking_uri="http://mlflow:5000")
        manifests = [*render_serving(spec), render_batch_job(spec, "s3://b/i.csv", "s3://b/o.csv", "x")]
        print(json.dumps({"module": modelops.__file__, "templates": str(templates_root()),
                          "sample": SAMPLE_DATA.is_file(), "manifests": manifests}))
    """,
        cwd=tmp_path,
    )
    result = json.loads(out)
    assert not result["module"].startswith(str(ROOT)), "imported the checkout, not the wheel"
    assert "site-packages" in result["templates"] and result["sample"]
    assert [m["kind"] for m in result["manifests"]] == ["Deployment", "Service", "Job"]
    for manifest in result["manifests"]:
        kubernetes_validate.validate(manifest, "1.30", strict=True)


def test_a_wheel_install_has_the_command_line(wheel_python: Path, tmp_path: Path) -> None:
    out = _run(
        wheel_python,
        """
        import sys
        from modelops.cli import main
        sys.argv = ["modelops", "--help"]
        try:
            main()
        except SystemExit as exc:
            assert exc.code == 0
    """,
        cwd=tmp_path,
    )
    assert "register-pretrained" in out and "exit codes:" in out


def test_a_wheel_install_serves_a_model(
    wheel_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the image does, without Docker: the installed package serves a registered version."""
    import contextlib
    import os
    import signal

    import httpx
    from support import register_fixture_version, wait_http

    from modelops import promote_model
    from modelops.serving.local import free_port

    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MODELOPS_HOME": str(tmp_path / "home"),
        "MLFLOW_EXPERIMENT_NAME": "wheel",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    register_fixture_version()
    promote_model("lead-scoring", 1, "Production")
    port = free_port()
    proc = subprocess.Popen(
        [str(wheel_python), "-m", "modelops", "serve", "lead-scoring", "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/ping", proc, timeout=120)
        rows = {
            "columns": [
                "completeness",
                "email_confidence",
                "phone_confidence",
                "source_priority",
                "intent_signal_score",
            ],
            "data": [[0.9, 0.8, None, 4, 60], [0.1, 0.2, 0.3, 1, 2]],
        }
        answer = httpx.post(f"{url}/invocations", json={"dataframe_split": rows}, timeout=30)
        about = httpx.get(f"{url}/version", timeout=10).json()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
    assert answer.headers["X-Model-Version"] == "1"
    assert about["engine"] == "onnx" and about["alias"] == "production"
    served_from = _run(
        wheel_python, "import modelops.serving.app as a; print(a.__file__)", tmp_path
    )
    assert not served_from.startswith(str(ROOT))
