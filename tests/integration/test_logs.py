#!/usr/bin/python3
"""test_logs - sluiced's logs and lifecycle (issue 20, point 4) against a
real broker: --log-format json --log-file (every line one JSON object with
time, level, module, msg), SIGUSR1 reopening the file after it was moved
away (as logrotate does), SIGHUP and SIGTERM logged in the new file; the
text format's line unchanged; a bad --log-format refused; `sluiced
--version` and `sluice --version` saying meson's project version; `sluice`
taking its connection options before the command; the bash completion
script offering every command and option that `sluice --help` and `sluice
help COMMAND` list.

Usage: test_logs.py BUILD_ROOT. Starts every process itself, in a
temporary directory, on ports the kernel picks, and stops them by PID.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SLUICED = os.path.join(BUILD, "broker", "sluiced")
SLUICE = os.path.join(BUILD, "adapters", "cli", "sluice")
COMPLETION = os.path.join(SOURCE, "adapters", "cli", "sluice.bash-completion")
TMP = tempfile.mkdtemp(prefix="sluice-logs-test-")
procs = []
checks = 0

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Fail(Exception):
    pass


def check(cond, what, detail=""):
    global checks
    checks += 1
    if not cond:
        raise Fail(f"{what}{': ' + str(detail) if detail else ''}")


def read(path):
    try:
        return open(path, errors="replace").read()
    except FileNotFoundError:
        return ""


def wait_for(path, text, p, what):
    for _ in range(300):
        if text in read(path):
            return
        check(p.poll() is None, f"sluiced still running while waiting for {what}", read(path))
        time.sleep(0.05)
    raise Fail(f"no {what} in {path}: {read(path)}")


def json_lines(path):
    """Every line of PATH as a dict, failing on any that is not the format."""
    out = []
    text = read(path)
    check(text.endswith("\n"), f"{path} ends with a whole line", text[-200:])
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise Fail(f"{path}: not JSON ({e}): {line!r}")
        check(isinstance(obj, dict), "each line is an object", line)
        for key in ("time", "level", "module", "msg"):
            check(isinstance(obj.get(key), str) and obj[key], f"line has {key}", line)
        check(TIME_RE.match(obj["time"]), "time is RFC 3339 UTC with milliseconds", line)
        check(obj["level"] in ("error", "warn", "info", "debug"), "level is a name", line)
        out.append(obj)
    return out


def meson_version():
    m = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", read(os.path.join(SOURCE, "meson.build")),
                  re.S)
    check(m, "meson.build names a project version")
    return m.group(1)


def test_json_log_and_signals():
    data = os.path.join(TMP, "json")
    log = os.path.join(TMP, "sluiced.log")
    err = os.path.join(TMP, "json.stderr")
    p = subprocess.Popen([SLUICED, "--data-dir", data, "--listen", "tcp://127.0.0.1:*",
                          "--insecure-plaintext", "--log-format", "json", "--log-file", log,
                          "--set", "broker/session_timeout_ms=500"],
                         stdout=subprocess.DEVNULL, stderr=open(err, "wb"))
    procs.append(p)
    wait_for(log, "listening on tcp://", p, "listening line")
    lines = json_lines(log)
    listen = [o for o in lines if o["msg"].startswith("listening on tcp://")]
    check(len(listen) == 1 and listen[0]["level"] == "info" and listen[0]["module"] == "broker",
          "the listening line is one info line of module broker", lines)
    check(type(listen[0].get("topics")) is int and f", {listen[0]['topics']} topics"
          in listen[0]["msg"], "the listening line carries its topic count as a number",
          listen[0])
    endpoint = re.match(r"listening on (tcp://\S+?),", listen[0]["msg"]).group(1)
    # A line another module wrote straight to stderr is wrapped, not lost.
    check(any(o["module"] == "sluiced" and "open-file limit" in o["msg"] for o in lines),
          "the open-file limit line (fprintf to stderr) came through as JSON", lines)

    # Connection options before the command (and after it) both work.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    r = subprocess.run([SLUICE, "--broker", endpoint, "--insecure-plaintext", "pub", "t.logs"],
                       input="one\ntwo\n", capture_output=True, text=True, env=env, timeout=60)
    check(r.returncode == 0, "sluice --broker X pub T", r.stderr)
    r = subprocess.run([SLUICE, "sub", "t.logs", "--broker", endpoint, "--insecure-plaintext",
                        "--from", "earliest", "--count", "2"],
                       capture_output=True, text=True, env=env, timeout=60)
    check(r.returncode == 0 and r.stdout == "one\ntwo\n", "sub T --broker X reads them back",
          r.stdout + r.stderr)

    # A client that stops talking: its session expires, and the line
    # carries the silence in milliseconds, the unit in the field's name.
    sub = subprocess.Popen([SLUICE, "sub", "t.quiet", "--follow", "--broker", endpoint,
                            "--insecure-plaintext"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    procs.append(sub)
    wait_for(log, "subscribed", p, "the quiet client's subscription")
    sub.send_signal(signal.SIGSTOP)
    wait_for(log, "expired: silent for", p, "the expiry line")
    sub.kill()
    sub.wait()
    expired = [o for o in json_lines(log) if "expired: silent for" in o["msg"]]
    # (Sessions of the CLI runs above may expire too: each line must hold.)
    check(expired and all(type(o.get("silent_ms")) is int and type(o.get("timeout_ms")) is int
                          and o["silent_ms"] >= o["timeout_ms"] > 0
                          and f"silent for {o['silent_ms']} ms" in o["msg"] for o in expired),
          "each expiry line has silent_ms and timeout_ms, as its text says", expired)

    rotated = log + ".1"
    os.rename(log, rotated)
    p.send_signal(signal.SIGUSR1)
    wait_for(log, "reopened", p, "reopen line in the new file")
    p.send_signal(signal.SIGHUP)
    wait_for(log, "configuration reloaded", p, "reload line")
    p.send_signal(signal.SIGTERM)
    check(p.wait(timeout=30) == 0, "sluiced exits 0 on SIGTERM")

    old, new = json_lines(rotated), json_lines(log)
    check(not any("reopened" in o["msg"] for o in old), "the moved file gets no line after it", old)
    check(any(o["msg"] == f"log file {log} reopened (SIGUSR1)" for o in new),
          "the new file says it was reopened", new)
    check(any("shutting down" in o["msg"] for o in new), "SIGTERM's line is in the new file", new)
    check(read(err) == "", "nothing went to the old stderr", read(err))


def test_text_default_and_bad_format():
    data = os.path.join(TMP, "text")
    log = os.path.join(TMP, "text.log")
    p = subprocess.Popen([SLUICED, "--data-dir", data, "--listen", "tcp://127.0.0.1:*",
                          "--insecure-plaintext"],
                         stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    procs.append(p)
    wait_for(log, "listening on tcp://", p, "listening line")
    p.send_signal(signal.SIGUSR1)
    wait_for(log, "nothing to reopen", p, "SIGUSR1 without a log file")
    p.send_signal(signal.SIGTERM)
    check(p.wait(timeout=30) == 0, "sluiced exits 0 on SIGTERM")
    text = read(log)
    check(re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ sluiced info: listening on tcp://", text,
                    re.M), "text lines keep their format", text)
    check("{" not in text, "no JSON in text mode", text)

    r = subprocess.run([SLUICED, "--log-format", "xml", "--data-dir", data], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 64 and 'broker/log_format: "xml" is not a log format' in r.stderr,
          "a bad --log-format is refused with the reason", r.stderr)


def test_versions():
    want = meson_version()
    for exe, name in ((SLUICED, "sluiced"), (SLUICE, "sluice")):
        r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
        check(r.returncode == 0 and r.stdout == f"{name} {want}\n",
              f"{name} --version says {name} {want}", r.stdout + r.stderr)


def complete(line):
    """What the completion script offers for LINE (cursor at its end)."""
    script = (f"source {COMPLETION}\n"
              'COMP_LINE="$1"; COMP_POINT=${#1}; COMP_WORDS=(x); COMP_CWORD=0\n'
              "_sluice\n"
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    r = subprocess.run(["bash", "-c", script, "bash", line], capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 0 and r.stderr == "", f"completion of {line!r} runs", r.stderr)
    return set(r.stdout.split())


def help_options(text):
    """The --options an option line of a usage text names (not its prose)."""
    found = set()
    for line in text.splitlines():
        if re.match(r"^ {2,}--", line):
            spec = re.split(r"\s{2,}", line.strip())[0]
            found.update(re.findall(r"--[a-z][a-z0-9-]*", spec))
    return found


def test_completion():
    r = subprocess.run([SLUICE, "--help"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "sluice --help", r.stderr)
    section = r.stdout.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    commands = {}
    for line in section.splitlines():
        spec = re.split(r"\s{2,}", line.strip())[0].split()
        # The second word, and alternatives after a placeholder (NAME|rm):
        # "schema show SUBJECT[@N] print a schema version" has one space
        # before its description.
        toks = spec[1:2] + [t for t in spec[2:] if "|" in t]
        subs = [w for tok in toks for w in tok.split("|") if re.fullmatch(r"[a-z][a-z-]*", w)]
        commands.setdefault(spec[0], set()).update(subs)
    check(len(commands) >= 15, "sluice --help lists the commands", commands)
    offered = complete("sluice ")
    check(set(commands) <= offered, "every command is offered", set(commands) - offered)
    check(complete("sluice --broker tcp://127.0.0.1:5555 rou") == {"routes"},
          "an endpoint with colons before the command does not confuse it")
    check("--version" in complete("sluice --"), "--version is offered first")
    runs = []
    for cmd, subs in commands.items():
        if cmd == "help":
            continue
        if subs:
            got = complete(f"sluice {cmd} ")
            check(subs <= got, f"the subcommands of {cmd} are offered", subs - got)
            runs += [[cmd, s] for s in subs]
        else:
            runs.append([cmd])
    for words in runs:
        h = subprocess.run([SLUICE, "help", *words], capture_output=True, text=True, timeout=30)
        want = help_options(h.stdout + h.stderr)
        check(want, f"sluice help {' '.join(words)} lists options", h.stdout + h.stderr)
        got = complete(f"sluice {' '.join(words)} --")
        check(want <= got, f"the options of {' '.join(words)} are offered", want - got)


def main():
    try:
        for t in (test_versions, test_json_log_and_signals, test_text_default_and_bad_format,
                  test_completion):
            t()
            print(f"ok {t.__name__}")
    except Fail as e:
        print(f"FAIL: {e}")
        return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    shutil.rmtree(TMP, ignore_errors=True)
    print(f"{checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
