"""Setup asks before it changes the system (issue 13, item 5).

scripts/install_browser.sh (run by scripts/setup.sh, so by scripts/test.sh) installs
Debian's chromium with apt-get only with consent: QA_INSTALL_BROWSER=1, or a CI
environment (the CI variable; .ci/run sets QA_INSTALL_BROWSER=1). Otherwise it says how
to enable the browser tests and changes nothing. Run here with stand-ins for apt-get and
id on PATH that only record how they were called, and a chromium path that does not exist.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "install_browser.sh"


@pytest.fixture
def fake_system(tmp_path) -> tuple[dict[str, str], Path]:
    """(environment, log file): apt-get and `id -u` (as root) that write to the log."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> {log}\n')
    (bin_dir / "id").write_text("#!/bin/sh\necho 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "QA_INSTALL_BROWSER", "QA_SKIP_BROWSER")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", QA_CHROMIUM=str(tmp_path / "no-chromium"))
    return env, log


def install(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], env={**env, **extra}, capture_output=True, text=True, timeout=60)


def test_without_consent_nothing_is_installed_and_it_says_how(fake_system):
    env, log = fake_system
    done = install(env)
    assert done.returncode == 0, done.stderr
    assert not log.exists()  # apt-get never ran
    assert "browser tests will be skipped" in done.stdout
    assert "QA_INSTALL_BROWSER=1 bash scripts/test.sh" in done.stdout
    assert "chromium chromium-driver fonts-noto-cjk" in done.stdout  # what it would install


@pytest.mark.parametrize("consent", [{"QA_INSTALL_BROWSER": "1"}, {"CI": "true"}, {"CI": "1"}])
def test_with_consent_or_in_ci_it_installs_debian_chromium(fake_system, consent):
    env, log = fake_system
    done = install(env, **consent)
    assert done.returncode == 0, done.stderr
    calls = log.read_text()
    assert "apt-get update" in calls and "apt-get install -y -qq chromium chromium-driver fonts-noto-cjk" in calls
    assert "installing Debian's chromium" in done.stdout


@pytest.mark.parametrize("refusal", [{"CI": "false"}, {"CI": "0"}, {"QA_INSTALL_BROWSER": "1", "QA_SKIP_BROWSER": "1"}])
def test_a_no_is_a_no(fake_system, refusal):
    env, log = fake_system
    assert install(env, **refusal).returncode == 0
    assert not log.exists()


def test_an_installed_chromium_is_left_alone(fake_system, tmp_path):
    env, log = fake_system
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    done = install(env, QA_INSTALL_BROWSER="1", QA_CHROMIUM=str(chromium))
    assert done.returncode == 0 and done.stdout == "" and not log.exists()


def test_setup_and_ci_use_it():
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert "bash scripts/install_browser.sh" in setup and "apt-get" not in setup
    assert "export QA_INSTALL_BROWSER=1" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_start_sh_takes_the_port_the_way_its_message_says():
    """qa serve reads QA_PORT itself and names it when the port is taken (tests/test_server.py):
    start.sh passes no --port that would hide it."""
    start = (ROOT / "scripts" / "start.sh").read_text(encoding="utf-8")
    serve = next(line for line in start.splitlines() if "qa serve" in line and not line.startswith("#"))
    assert "--port" not in serve and "--host" not in serve
    assert "QA_PORT=8001 bash scripts/start.sh" in start
