# Run the walkthrough's commands in a scratch folder and show them as a console would.
import os
import subprocess
from pathlib import Path

WORK = Path(os.environ["INSILICO_DOCS_RUN"]) / "walkthrough"
WORK.mkdir(parents=True, exist_ok=True)


def sh(command: str, check: bool = True) -> None:
    run = subprocess.run(["bash", "-c", command], cwd=WORK, capture_output=True, text=True)
    print(f"$ {command.strip()}")
    out = (run.stdout + run.stderr).rstrip()
    if out:
        print(out)
    if run.returncode:
        print(f"(exit code {run.returncode})")
        if check:
            raise RuntimeError(f"{command!r} failed with exit code {run.returncode}")


def write(name: str, text: str) -> None:
    (WORK / name).write_text(text)
    print(f"$ cat > {name}  # written")
