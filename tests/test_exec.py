"""``pipeline-secrets exec`` end to end, the real console script in a subprocess: its vars resolved
through the fault proxy from moto, the command (a small Python script) run with them, its output
redacted byte for byte, signals forwarded, exit statuses passed through, and no value anywhere in
our own process."""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from conftest import read_ids, restricted_policy
from ops_support import AWS_FLAGS

from pipeline_secrets.errors import FieldError
from pipeline_secrets.pure.environment import env_text

R = b"((redacted))"
TEAM, PIPELINE = "main", "deploy"
PASSWORD = "db-pass-Xy7!/+= ü"
TOKEN = "api-token-0123456789"
KEY = "-----BEGIN KEY-----\nMIIEowIBAAKCAQEA\nsecond-line-of-key\n-----END KEY-----"
SCOPE = ["--team", TEAM, "--pipeline", PIPELINE]


@pytest.fixture
def secrets(seed):
    seed(f"/concourse/{TEAM}/{PIPELINE}/db", {"user": "app-user", "password": PASSWORD, "port": 5432})
    seed(f"/concourse/{TEAM}/{PIPELINE}/token", TOKEN)
    seed(f"/concourse/{TEAM}/key", KEY)
    seed(f"/concourse/{TEAM}/pin", "123")


def exec_argv(*args: str, command: list[str]) -> list[str]:
    return [sys.executable, "-m", "pipeline_secrets", "exec", *args, *AWS_FLAGS, "--", *command]


def exec_env(proxy, **extra: str) -> dict[str, str]:
    env = {**os.environ, "AWS_ENDPOINT_URL_SECRETS_MANAGER": proxy.url, **extra}
    env.pop("PIPELINE_SECRETS_DEBUG", None)
    return env


def run_exec(proxy, *args: str, command: list[str], timeout: float = 60, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(exec_argv(*args, command=command), env=exec_env(proxy, **extra), capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / f"{name}.py"
    path.write_text(body)
    return [sys.executable, str(path)]


DUMP_ENV = """
import json, os, sys
with open(sys.argv[1], "w") as out:
    json.dump(dict(os.environ), out)
"""


# --- values reach the command ----------------------------------------------------------------


def test_values_reach_the_command_from_flags_and_an_env_file(secrets, proxy, tmp_path):
    env_file = tmp_path / "env.yml"
    env_file.write_text("DATABASE_URL: postgres://((db.user)):((db.password))@host/db\n"
                        "DB: ((db))\nPORT: ((db.port))\nTOKEN: overridden by --env\nPLAIN: no vars here\n")
    dump = tmp_path / "env.json"
    result = run_exec(proxy, *SCOPE, "--env", "TOKEN=token", "-e", "KEY=((key))", "--env-file", str(env_file),
                      command=[*script(tmp_path, "dump", DUMP_ENV), str(dump)], PARENT_ONLY="kept")
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == (b"", b"")
    env = json.loads(dump.read_text())
    assert env["DATABASE_URL"] == f"postgres://app-user:{PASSWORD}@host/db"
    assert json.loads(env["DB"]) == {"user": "app-user", "password": PASSWORD, "port": 5432}  # a mapping: JSON
    assert env["PORT"] == "5432"
    assert env["TOKEN"] == TOKEN and env["KEY"] == KEY and env["PLAIN"] == "no vars here"
    assert env["PARENT_ONLY"] == "kept"
    # One batched resolution: each candidate path read once, however many times a var is used.
    ids = read_ids(proxy)
    assert len(ids) == len(set(ids))
    assert set(ids) == {f"/concourse/{TEAM}/{PIPELINE}/db", f"/concourse/{TEAM}/{PIPELINE}/token",
                        f"/concourse/{TEAM}/{PIPELINE}/key", f"/concourse/{TEAM}/key"}


def test_clear_env_gives_only_the_vars_and_a_minimal_path(secrets, proxy):
    result = run_exec(proxy, *SCOPE, "--clear-env", "--no-redact", "-e", "TOKEN=token", command=["env"],
                      PARENT_ONLY="not passed")
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.decode().splitlines()) == ["PATH=/usr/local/bin:/usr/bin:/bin", f"TOKEN={TOKEN}"]


@pytest.mark.parametrize("args, message", [
    (["-e", "TOKEN=nope"], "undefined vars: nope"),
    (["-e", "TOKEN=token", "-e", "OTHER=db.missing"], "missing field 'missing' in var: db.missing"),
    (["-e", "TOKEN=other-team/x"], "refused"),
    (["-e", "X=src:name"], "missing source 'src'"),
])
def test_an_undefined_or_refused_var_exits_1_and_nothing_runs(secrets, proxy, tmp_path, args, message):
    marker = tmp_path / "ran"
    result = run_exec(proxy, *SCOPE, *args, command=[*script(tmp_path, "mark", "import sys; open(sys.argv[1], 'w')"),
                                                     str(marker)])
    assert result.returncode == 1
    assert message in result.stderr.decode() and b"Traceback" not in result.stderr
    assert not marker.exists()
    assert result.stdout == b""


def test_a_lookup_failure_exits_1_and_nothing_runs(secrets, proxy, tmp_path):
    proxy.set_policy(restricted_policy("other-team"))
    marker = tmp_path / "ran"
    result = run_exec(proxy, *SCOPE, "-e", "TOKEN=token",
                      command=[*script(tmp_path, "mark", "import sys; open(sys.argv[1], 'w')"), str(marker)])
    assert result.returncode == 1
    assert "AccessDeniedException" in result.stderr.decode()
    assert TOKEN not in result.stderr.decode()
    assert not marker.exists()


@pytest.mark.parametrize("args, env_file, message", [
    (["-e", "1BAD=token"], None, "invalid environment variable name '1BAD'"),
    (["-e", "TOKEN"], None, "'TOKEN' is not NAME=VAR"),
    (["-e", "TOKEN="], None, "is not NAME=VAR"),
    (["-e", "T=token", "-e", "T=db"], None, "T is given twice"),
    ([], "- a list\n", "must be a mapping of environment variable names to strings, not a list"),
    ([], "PORT: 5432\n", "the value of PORT must be a string, not int (quote it)"),
    ([], "BAD-NAME: x\n", "invalid environment variable name 'BAD-NAME'"),
    ([], "a: [b\n", "invalid YAML"),
    (["--env-file", "/nonexistent/env.yml"], None, "cannot read '/nonexistent/env.yml'"),
    (["--env-file", "-"], None, "'-' is not allowed"),
    (["--redact-min-length", "0"], None, "--redact-min-length"),
    (["--redact-hold", "soon"], None, "invalid duration"),
])
def test_bad_input_exits_2_before_any_lookup_and_nothing_runs(secrets, proxy, tmp_path, args, env_file, message):
    if env_file is not None:
        (tmp_path / "env.yml").write_text(env_file)
        args = [*args, "--env-file", str(tmp_path / "env.yml")]
    marker = tmp_path / "ran"
    result = run_exec(proxy, *SCOPE, *args,
                      command=[*script(tmp_path, "mark", "import sys; open(sys.argv[1], 'w')"), str(marker)])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.decode()
    assert b"Traceback" not in result.stderr and b"internal error" not in result.stderr
    assert not marker.exists()
    assert proxy.log == []


def test_a_command_that_cannot_start_exits_127_or_126(secrets, proxy, tmp_path):
    missing = run_exec(proxy, *SCOPE, "-e", "TOKEN=token", command=["no-such-command-here"])
    assert missing.returncode == 127
    assert missing.stderr.decode() == "error: command not found: no-such-command-here\n"
    not_executable = tmp_path / "plain.txt"
    not_executable.write_text("echo hi\n")
    refused = run_exec(proxy, *SCOPE, "-e", "TOKEN=token", command=[str(not_executable)])
    assert refused.returncode == 126
    assert "command not executable" in refused.stderr.decode()


def test_env_values_are_strings_an_environment_can_hold():
    assert env_text("A", "text") == "text"
    assert env_text("A", {"k": "ü", "n": 1}) == '{"k": "ü", "n": 1}'  # JSON, as `lookup` prints it
    assert (env_text("A", 5432), env_text("A", True), env_text("A", None)) == ("5432", "true", "null")
    for value, why in (("a\0b", "NUL character"), ("a\ud800b", "surrogate")):
        with pytest.raises(FieldError, match=f"the value of A .*{why}"):
            env_text("A", value)


# --- redaction -------------------------------------------------------------------------------

PRINTER = r"""
import base64, json, os, sys
from urllib.parse import quote, quote_plus

def slowly(stream, data):
    for byte in data:  # one byte per write(2)
        stream.buffer.write(bytes([byte]))
        stream.buffer.flush()

password, token, key = os.environ["PASSWORD"], os.environ["TOKEN"], os.environ["KEY"]
slowly(sys.stdout, f"password={password}\n".encode())
slowly(sys.stderr, f"token on stderr: {token}\n".encode())
slowly(sys.stdout, b"b64=" + base64.b64encode(password.encode()) + b"\n")
slowly(sys.stdout, f"url={quote(password, safe='')} form={quote_plus(password)}\n".encode())
slowly(sys.stdout, json.dumps({"password": password, "n": 1}).encode() + b"\n")
slowly(sys.stdout, f"key:\n{key}\nsecond line alone: second-line-of-key\n".encode())
slowly(sys.stderr, b"binary: \xff\x00\xfe" + token.encode() + b"\x80\n")
slowly(sys.stdout, f"url again: {os.environ['DATABASE_URL']}\n".encode())
slowly(sys.stdout, f"its user alone: {os.environ['DATABASE_URL'][11:19]}\n".encode())
slowly(sys.stdout, b"a prefix at the end: db-pa")
"""


def test_values_written_one_byte_at_a_time_are_redacted_and_the_rest_kept_byte_for_byte(secrets, proxy, tmp_path):
    env_file = tmp_path / "env.yml"
    env_file.write_text("DATABASE_URL: postgres://((db.user)):((db.password))@host/db\n")
    # A hold far longer than the child's writes are apart (even on a loaded machine): the test is
    # about values cut across writes, not about the timer (the prompt tests are).
    result = run_exec(proxy, *SCOPE, "-e", "PASSWORD=db.password", "-e", "TOKEN=token", "-e", "KEY=key",
                      "--env-file", str(env_file), "--redact-hold", "10s", command=script(tmp_path, "print", PRINTER))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        b"password=" + R + b"\n"
        b"b64=" + R + b"\n"
        b"url=" + R + b" form=" + R + b"\n"
        b'{"password": "' + R + b'", "n": 1}\n'
        b"key:\n" + R + b"\nsecond line alone: " + R + b"\n"
        b"url again: " + R + b"\n"  # the variable's whole value is a value too
        b"its user alone: " + R + b"\n"  # and so is each var in it
        b"a prefix at the end: db-pa"
    )
    assert result.stderr == b"token on stderr: " + R + b"\nbinary: \xff\x00\xfe" + R + b"\x80\n"
    for value in (PASSWORD, TOKEN, *KEY.splitlines(), "app-user"):
        assert value.encode() not in result.stdout + result.stderr
    for form in (base64.b64encode(PASSWORD.encode()), quote(PASSWORD, safe="").encode(), quote_plus(PASSWORD).encode(),
                 json.dumps(PASSWORD)[1:-1].encode()):
        assert form not in result.stdout


BULK = r"""
import os, sys
token = os.environ["TOKEN"].encode()
line = b"x" * 65_530 + token + b"\n"  # every value straddles a 64 KiB read
sys.stdout.buffer.write(line * 80)
sys.stderr.buffer.write(line * 8)
"""


def test_values_across_read_boundaries_in_megabytes_of_output(secrets, proxy, tmp_path):
    result = run_exec(proxy, *SCOPE, "-e", "TOKEN=token", command=script(tmp_path, "bulk", BULK))
    assert result.returncode == 0, result.stderr
    line = b"x" * 65_530 + R + b"\n"
    assert result.stdout == line * 80
    assert result.stderr == line * 8


def test_no_redact_passes_the_output_as_it_is(secrets, proxy, tmp_path):
    result = run_exec(proxy, *SCOPE, "--no-redact", "-e", "TOKEN=token",
                      command=script(tmp_path, "echo", "import os; print(os.environ['TOKEN'])"))
    assert result.returncode == 0
    assert result.stdout == TOKEN.encode() + b"\n"
    assert result.stderr == b""


def test_short_values_are_named_in_a_warning_and_not_redacted(secrets, proxy, tmp_path):
    result = run_exec(proxy, *SCOPE, "-e", "PIN=pin", "-e", "TOKEN=token",
                      command=script(tmp_path, "echo", "import os; print(os.environ['PIN'], os.environ['TOKEN'])"))
    assert result.returncode == 0
    assert result.stdout == b"123 " + R + b"\n"
    assert result.stderr == b"warning: not redacted, shorter than 4 characters: $PIN, ((pin))\n"
    longer = run_exec(proxy, *SCOPE, "-e", "TOKEN=token", "--redact-min-length", "64",
                      command=script(tmp_path, "echo", "import os; print(os.environ['TOKEN'])"))
    assert longer.stdout == TOKEN.encode() + b"\n"
    assert longer.stderr == b"warning: not redacted, shorter than 64 characters: $TOKEN, ((token))\n"


PROMPT = r"""
import sys
sys.stdout.write(sys.argv[1])
sys.stdout.flush()
answer = sys.stdin.readline()  # nothing comes until the test has seen the prompt
sys.stdout.write("got " + answer)
"""


@pytest.mark.parametrize("prompt", ["Continue? [y/N] ", "Enter the api-tok"], ids=["plain", "ends-like-a-value"])
def test_a_prompt_without_a_newline_shows_while_the_command_waits(secrets, proxy, tmp_path, prompt):
    """Behavioural, not timed: the command waits for a line that the test sends only once it has
    read the prompt, so a prompt held back until the command exits fails (after a generous 20 s).
    A prompt that ends like the start of a value is held, then written when the output goes quiet."""
    process = subprocess.Popen(exec_argv(*SCOPE, "-e", "TOKEN=token", command=[*script(tmp_path, "ask", PROMPT), prompt]),
                               env=exec_env(proxy), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        seen = read_until(process.stdout, prompt.encode(), timeout=20)
        assert seen == prompt.encode()
        assert process.poll() is None  # still waiting for its answer
        process.stdin.write(b"yes\n")
        process.stdin.close()
        assert process.wait(timeout=20) == 0
        assert process.stdout.read() == b"got yes\n"
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
        process.stderr.close()


def read_until(stream, expected: bytes, timeout: float) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < len(expected) and time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            got += chunk
    return got


# --- exit statuses and signals ---------------------------------------------------------------


@pytest.mark.parametrize("code, status", [
    ("import sys; sys.exit(0)", 0),
    ("import sys; sys.exit(7)", 7),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 137),
    ("import os, signal; signal.signal(signal.SIGTERM, signal.SIG_DFL); os.kill(os.getpid(), signal.SIGTERM)", 143),
])
def test_the_exit_status_is_the_commands_and_128_plus_n_for_a_signal(secrets, proxy, tmp_path, code, status):
    for redact in ([], ["--no-redact"]):
        result = run_exec(proxy, *SCOPE, *redact, "-e", "TOKEN=token", command=script(tmp_path, "exit", code))
        assert result.returncode == status, result.stderr


WAITER = r"""
import os, signal, sys, time
ready, got = sys.argv[1], sys.argv[2]

def handle(signum, frame):
    with open(got, "w") as out:
        out.write(str(signum))
    sys.exit(40)

for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(signum, handle)
with open(ready, "w") as out:
    out.write(str(os.getpid()))
time.sleep(60)
sys.exit(1)
"""


def wait_for(path: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                                    signal.SIGUSR2])
@pytest.mark.parametrize("redact", [True, False], ids=["redacting", "no-redact"])
def test_signals_to_us_are_forwarded_to_the_command(secrets, proxy, tmp_path, signum, redact):
    ready, got = tmp_path / "ready", tmp_path / "got"
    args = [*SCOPE, "-e", "TOKEN=token", *([] if redact else ["--no-redact"])]
    process = subprocess.Popen(exec_argv(*args, command=[*script(tmp_path, "wait", WAITER), str(ready), str(got)]),
                               env=exec_env(proxy), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        child = int(wait_for(ready))
        os.kill(process.pid, signum)
        assert process.wait(timeout=30) == 40  # the command's own exit status, after its handler ran
        assert wait_for(got) == str(int(signum))
        assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
        process.stderr.close()


def test_sigterm_ends_a_command_that_does_not_handle_it(secrets, proxy, tmp_path):
    ready = tmp_path / "ready"
    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    process = subprocess.Popen(exec_argv(*SCOPE, "-e", "TOKEN=token", command=[*script(tmp_path, "sleep", code),
                                                                                str(ready)]),
                               env=exec_env(proxy), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        wait_for(ready)
        process.terminate()
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
        process.stderr.close()


def test_a_closed_stdout_ends_a_command_that_writes_for_ever(secrets, proxy):
    process = subprocess.Popen(exec_argv(*SCOPE, "-e", "TOKEN=token", command=["yes"]), env=exec_env(proxy),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert read_until(process.stdout, b"y\n" * 5000, timeout=30).startswith(b"y\n" * 100)
        process.stdout.close()  # `| head` has read enough: the command gets SIGPIPE, as it would without us
        assert process.wait(timeout=30) == 128 + signal.SIGPIPE
        assert process.stderr.read() == b""
    finally:
        process.kill()
        process.wait()
        process.stderr.close()


# --- no value in our own process -------------------------------------------------------------


def test_no_value_in_our_argv_environ_or_a_temporary_file(secrets, proxy, tmp_path):
    ready = tmp_path / "ready"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    process = subprocess.Popen(exec_argv(*SCOPE, "-e", "TOKEN=token", "-e", "PASSWORD=db.password",
                                         command=[*script(tmp_path, "sleep", code), str(ready)]),
                               env=exec_env(proxy, TMPDIR=str(tmp)), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        child = int(wait_for(ready))
        ours = {name: Path(f"/proc/{process.pid}/{name}").read_bytes() for name in ("cmdline", "environ")}
        theirs = Path(f"/proc/{child}/cmdline").read_bytes()
        for value in (TOKEN, PASSWORD):
            encoded = value.encode()
            assert encoded not in ours["cmdline"] and encoded not in ours["environ"] and encoded not in theirs
        # The command's own environment holds them: that is where they are meant to be.
        assert TOKEN.encode() in Path(f"/proc/{child}/environ").read_bytes()
        files = [os.readlink(f"/proc/{process.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{process.pid}/fd")]
        assert not [name for name in files if name.startswith("/") and not name.startswith(("/dev/", "/proc/"))]
        assert list(tmp.iterdir()) == []
        process.terminate()
        process.wait(timeout=30)
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
        process.stderr.close()
    assert list(tmp.iterdir()) == []


def test_dev_mode_runs_against_the_embedded_emulator(tmp_path):
    code = "import os; print('token:', os.environ['TOKEN'])"
    env = {**os.environ}
    env.pop("PIPELINE_SECRETS_DEBUG", None)
    result = subprocess.run([sys.executable, "-m", "pipeline_secrets", "exec", "--dev", "--team", "main",
                             "--pipeline", "hello", "-e", "TOKEN=api-token", "--", *script(tmp_path, "dev", code)],
                            env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"token: " + R + b"\n"
