#!/usr/bin/env python3
"""Run a command as the terminal's foreground job, so that Ctrl-C reaches the command alone.

`make demo` ends in a server that stops cleanly (exit 0) on Ctrl-C. A terminal sends SIGINT to its whole foreground
process group, so GNU make receives it too and dies by the signal (exit 130, "*** Interrupt") although the server
stopped cleanly. This launcher puts the command in its own process group and hands it the terminal, the way a
job-control shell starts a job; it exits with the command's status. Ctrl-Z stops and resumes the whole job. SIGTERM
and SIGHUP sent to the launcher (make forwards SIGTERM to its recipe) are passed on to the command. Without a
terminal, or when not in the terminal's foreground, the command simply replaces the launcher.

Usage: foreground.py COMMAND [ARG...]
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

FORWARDED = (signal.SIGTERM, signal.SIGHUP)


def _controlling_terminal() -> int | None:
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if os.tcgetpgrp(tty) == os.getpgrp():
            return tty
    except OSError:
        pass
    os.close(tty)
    return None


def _give_terminal(tty: int, pgid: int) -> None:
    # A process outside the foreground group gets SIGTTOU for tcsetpgrp unless it ignores it.
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(tty, pgid)
    finally:
        signal.signal(signal.SIGTTOU, previous)


def run_in_foreground(argv: list[str], tty: int) -> int:
    own_group = os.getpgrp()

    def become_job() -> None:
        os.setpgid(0, 0)
        _give_terminal(tty, os.getpgrp())

    try:
        child = subprocess.Popen(argv, preexec_fn=become_job, pass_fds=(tty,))
    except OSError as err:
        print(f"error: cannot run {argv[0]}: {err.strerror}", file=sys.stderr)
        return 127
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
    try:
        while True:
            _, status = os.waitpid(child.pid, os.WUNTRACED)
            if not os.WIFSTOPPED(status):
                break
            # Ctrl-Z stopped the command: stop the job that started us too, then resume both together.
            _give_terminal(tty, own_group)
            os.killpg(own_group, signal.SIGTSTP)
            _give_terminal(tty, child.pid)
            os.killpg(child.pid, signal.SIGCONT)
    finally:
        with contextlib.suppress(OSError):
            _give_terminal(tty, own_group)
    child.returncode = os.waitstatus_to_exitcode(status)
    if os.WIFSIGNALED(status):
        # Die the same way, so whoever started us sees what really happened.
        died_by = os.WTERMSIG(status)
        signal.signal(died_by, signal.SIG_DFL)
        os.kill(os.getpid(), died_by)
    return child.returncode


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: foreground.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    tty = _controlling_terminal()
    if tty is None:
        try:
            os.execvp(argv[0], argv)
        except OSError as err:
            print(f"error: cannot run {argv[0]}: {err.strerror}", file=sys.stderr)
            return 127
    return run_in_foreground(argv, tty)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
