"""The launcher of :func:`bench.measure.run_measured` (kept tiny: see ``measure.py``).

    python -I -S bench/launch.py RESULT.json -- COMMAND [ARGS...]

Spawns the command with its standard streams inherited, reaps it with :func:`os.wait4` and writes
``{"wall_s", "maxrss_kb", "returncode"}`` to ``RESULT.json``; exits with the command's status. Only
``os``, ``sys`` and ``time`` are imported, so the launcher's own high-water RSS (which Linux hands
down to the command's ``ru_maxrss``) stays that of a bare interpreter.
"""

import os
import sys
import time


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: python launch.py RESULT.json -- COMMAND [ARGS...]\n")
        return 2
    result, cmd = argv[1], argv[3:]
    started = time.perf_counter()
    try:
        pid = os.posix_spawnp(cmd[0], cmd, os.environ)
    except OSError as e:
        sys.stderr.write(f"cannot start {cmd[0]}: {e}\n")
        return 127
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    with open(result, "w", encoding="utf-8") as f:
        f.write('{"wall_s": %r, "maxrss_kb": %d, "returncode": %d, "cpu_s": %r}'
                % (wall, usage.ru_maxrss, code, usage.ru_utime + usage.ru_stime))
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
