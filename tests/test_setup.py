"""Setup asks before it changes the system (issue 13, item 5).

scripts/install_browser.sh (run by scripts/setup.sh, so by scripts/test.sh) installs
Debian's chromium with apt-get only with consent: QA_INSTALL_BROWSER=1, or a CI
environment (the CI variable; .ci/run sets QA_INSTALL_BROWSER=1). Otherwise it says how
to enable the browser tests and changes nothing. Where chromium is, it installs axe-core
with `npm ci` into tests/axe (inside the project). Run here on a copy of the script in a
scratch project, with stand-ins for apt-get, id and npm on PATH that only record how they
were called, and a chromium path that does not exist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "install_browser.sh"


@pytest.fixture
def fake_system(tmp_path) -> tuple[dict[str, str], Path]:
    """(environment, log file): apt-get, `id -u` (as root) and npm that write to the log, and a
    scratch project holding the script and tests/axe's package files."""
    bin_dir, log, project = tmp_path / "bin", tmp_path / "calls.log", tmp_path / "project"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> {log}\n')
    (bin_dir / "id").write_text("#!/bin/sh\necho 0\n")
    (bin_dir / "npm").write_text(f'#!/bin/sh\necho "npm $*" >> {log}\nmkdir -p tests/axe/node_modules\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    (project / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, project / "scripts")
    shutil.copytree(ROOT / "tests" / "axe", project / "tests" / "axe", ignore=shutil.ignore_patterns("node_modules"))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "QA_INSTALL_BROWSER", "QA_SKIP_BROWSER")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", QA_CHROMIUM=str(tmp_path / "no-chromium"))
    return env, log


def install(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    script = Path(env["QA_CHROMIUM"]).parent / "project" / "scripts" / SCRIPT.name
    bash = shutil.which("bash")  # by its path: a test may leave PATH without it
    return subprocess.run([bash, str(script)], env={**env, **extra}, capture_output=True, text=True, timeout=60)


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


def test_an_installed_chromium_is_left_alone_and_axe_core_installed_once(fake_system, tmp_path):
    env, log = fake_system
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    done = install(env, QA_CHROMIUM=str(chromium))  # no consent needed: npm installs inside the project
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == ["npm ci --prefix tests/axe --no-audit --no-fund --loglevel=error"]
    assert "installing axe-core into tests/axe/node_modules" in done.stdout
    done = install(env, QA_INSTALL_BROWSER="1", QA_CHROMIUM=str(chromium))
    assert done.returncode == 0 and done.stdout == "" and len(log.read_text().splitlines()) == 1  # up to date
    lock = tmp_path / "project" / "tests" / "axe" / "package-lock.json"
    stamp = lock.parent / "node_modules" / ".qa-installed"
    os.utime(lock, (stamp.stat().st_mtime + 10,) * 2)  # a new lock (another axe-core version): again
    assert install(env, QA_CHROMIUM=str(chromium)).returncode == 0 and len(log.read_text().splitlines()) == 2


def test_without_npm_the_accessibility_tests_are_said_to_skip_and_how_to_get_it(fake_system, tmp_path):
    env, log = fake_system
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    bare = tmp_path / "bare"  # a PATH with what the script uses, and no npm
    bare.mkdir()
    for tool in ("dirname", "touch"):
        (bare / tool).symlink_to(shutil.which(tool))
    for tool in ("apt-get", "id"):
        (bare / tool).symlink_to(tmp_path / "bin" / tool)
    done = install(env, PATH=str(bare), QA_CHROMIUM=str(chromium))
    assert done.returncode == 0, done.stderr
    assert "npm is missing" in done.stdout and "apt-get install npm" in done.stdout and not log.exists()
    done = install(env, PATH=str(bare), QA_CHROMIUM=str(chromium), CI="true")  # consent: Debian's npm
    assert "apt-get install -y -qq npm" in log.read_text()


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
