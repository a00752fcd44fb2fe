"""A local hub server for the publishing tests: olah (in its own virtual environment) + the write endpoints of
`olah_server.py`, on 127.0.0.1 at a free port.

The venv is built once at ``.venv-olah/`` in the repo (or ``$NLP_TRANSFER_OLAH_VENV``) with ``pip install olah``
from the package registry (~20 s); olah pins newer fastapi/huggingface_hub than the project needs, hence its own
venv. The tests skip, saying why, when it cannot be built.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OLAH = "olah==0.5.4"
TOKEN = "hf_TESTsecretTOKEN0123456789abcdef"  # a dummy: the server accepts only this one


def _olah_python() -> str:
    venv = Path(os.environ.get("NLP_TRANSFER_OLAH_VENV") or REPO / ".venv-olah")
    python = venv / "bin" / "python"
    if python.is_file():
        r = subprocess.run([str(python), "-c", "import olah, uvicorn"], capture_output=True)
        if r.returncode == 0:
            return str(python)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", OLAH],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"could not build the olah venv for the hub tests ({OLAH} from PyPI): {getattr(e, 'stderr', e)}")
    return str(python)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HubServer:
    def __init__(self, url, root, token):
        self.url, self.root, self.token = url, root, token

    def env(self, home, **extra) -> dict:
        """Environment for a client process: set before huggingface_hub is imported (HF_ENDPOINT is read once)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(
            HF_ENDPOINT=self.url,
            HF_TOKEN=self.token,
            HF_HOME=str(home),
            HF_HUB_DISABLE_XET="1",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_OFFLINE="0",
            TRANSFORMERS_VERBOSITY="error",
            TOKENIZERS_PARALLELISM="false",
            OMP_NUM_THREADS="1",
        )
        env.update({k: v for k, v in extra.items() if v is not None})
        for k in [k for k, v in extra.items() if v is None]:
            env.pop(k, None)
        return env

    def state(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/_test/state", timeout=10) as r:
            return json.load(r)

    def fault(self, **spec) -> None:
        req = urllib.request.Request(
            f"{self.url}/_test/fault",
            data=json.dumps(spec).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(req, timeout=10).close()

    def repo_dir(self, repo_id) -> Path:
        return Path(self.root) / "mirrors" / "models" / repo_id


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    python = _olah_python()
    root = tmp_path_factory.mktemp("hub")
    port = _free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [python, str(Path(__file__).parent / "olah_server.py"), "--root", str(root), "--port", str(port)]
        + ["--token", TOKEN],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    server = HubServer(f"http://127.0.0.1:{port}", str(root), TOKEN)
    deadline = time.time() + 60
    while True:
        try:
            server.state()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"the local hub server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
    yield server
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
