"""``idresnet train`` (the CLI, its arguments from the command line) with faults injected by
environment variables: run by test_torchrun_resume.py, alone or as torchrun's worker, so
that every attempt of a job runs the same command and only the environment says where it dies.

- ``IDRESNET_TEST_KILLS=10,22`` and ``IDRESNET_TEST_MARKS=DIR``: after the step that reaches
  iteration 10 the process (rank ``IDRESNET_TEST_KILL_RANK``, default 1 under torchrun, 0
  alone) SIGKILLs itself, once: the file ``DIR/killed-10`` marks the kill as done, so the
  next attempt trains through it (and dies at 22, once).
- ``IDRESNET_TEST_STEPS=FILE``: rank 0 appends ``PID ITERATION`` after every step (which
  iterations each attempt trained).
- ``IDRESNET_TEST_ABSENT=RANK``: in a relaunch by torchrun (``TORCHELASTIC_RESTART_COUNT``
  > 0) that rank never joins the process group (it sleeps): the group cannot form.
"""

import os
import signal
import sys
import time
from pathlib import Path

from idresnet.cli.main import main
from idresnet.training.engine import _Trainer

RANK = int(os.environ.get("RANK", "0"))
RESTART = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
KILLS = [int(k) for k in os.environ.get("IDRESNET_TEST_KILLS", "").split(",") if k]
KILL_RANK = int(os.environ.get("IDRESNET_TEST_KILL_RANK", "1" if "RANK" in os.environ else "0"))
MARKS = Path(os.environ.get("IDRESNET_TEST_MARKS", "."))
STEPS = os.environ.get("IDRESNET_TEST_STEPS")
ABSENT = os.environ.get("IDRESNET_TEST_ABSENT")

step = _Trainer._step


def step_with_faults(self, x, y):
    step(self, x, y)
    if STEPS and RANK == 0:
        with open(STEPS, "a") as f:
            f.write(f"{os.getpid()} {self.it}\n")
    if RANK == KILL_RANK and self.it in KILLS and not (MARKS / f"killed-{self.it}").exists():
        (MARKS / f"killed-{self.it}").touch()
        os.kill(os.getpid(), signal.SIGKILL)


_Trainer._step = step_with_faults

if __name__ == "__main__":
    if ABSENT is not None and RESTART > 0 and RANK == int(ABSENT):
        time.sleep(600)  # torchrun stops it once the others fail
    sys.exit(main(sys.argv[1:]))
