"""Execute a notebook top to bottom with new parameters, headless (what CI does).

Run it with the notebooks' virtualenv, whose Python is then the kernel::

    .venv-notebooks/bin/python notebooks/run_notebook.py notebooks/retrain.ipynb \\
        --output out/notebooks/retrain.ipynb \\
        -p BUCKET=clicksentry-archive-123456789012-eu-west-1 -p FROM_HOUR=2026-01-05T00 \\
        -p TO_HOUR=2026-01-06T00 -p LABELS_URI=s3://…/labels.csv

NOTEBOOK is an ``.ipynb`` or its jupytext ``.py``. Each ``-p NAME=VALUE`` overrides a name the
notebook's parameters cell (the code cell tagged ``parameters``) assigns; VALUE is read as a
Python literal (``None``, ``0.8``, ``'text'``) and otherwise taken as text. The overrides go into
a cell of their own after the parameters cell (tagged ``injected-parameters``), as papermill
does. The kernel is this Python (``sys.executable``), whatever kernels Jupyter knows of, on IPC
sockets (no TCP port); the working directory is the notebook's folder. The executed notebook, outputs included, is written
to ``--output`` even when a cell fails; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

KERNEL_NAME = "clicksentry-notebooks-run"


def parse_parameter(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` as ``(NAME, value)``: VALUE a Python literal, else the text itself."""
    name, sep, raw = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return name, value


def parameters_cell(nb: nbformat.NotebookNode) -> int:
    """Index of the code cell tagged ``parameters``."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return i
    raise SystemExit("the notebook has no code cell tagged 'parameters'")


def inject(nb: nbformat.NotebookNode, overrides: dict[str, object]) -> None:
    """Insert the overrides as a cell after the parameters cell; unknown names are refused."""
    at = parameters_cell(nb)
    assigned = {
        target.id
        for node in ast.parse(nb.cells[at].source).body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    unknown = sorted(set(overrides) - assigned)
    if unknown:
        raise SystemExit(f"not parameters of this notebook: {unknown} (it has {sorted(assigned)})")
    if overrides:
        source = "# Parameters injected by run_notebook.py\n" + "".join(
            f"{name} = {value!r}\n" for name, value in overrides.items()
        )
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
        nb.cells.insert(at + 1, cell)


def kernel_path(folder: Path) -> Path:
    """A Jupyter data folder whose only kernel runs ``sys.executable`` (this virtualenv)."""
    spec = folder / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "clicksentry notebooks",
        "language": "python",
    }))
    return folder


def main(argv: list[str] | None = None) -> int:
    """Read, inject, execute, write."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path, help="an .ipynb or its jupytext .py")
    parser.add_argument("--output", type=Path, required=True, help="the executed .ipynb")
    parser.add_argument("-p", "--parameter", action="append", default=[], type=parse_parameter,
                        metavar="NAME=VALUE", help="override a parameter (repeatable)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)
    nb = jupytext.read(args.notebook)
    inject(nb, dict(args.parameter))
    with tempfile.TemporaryDirectory() as data:
        os.environ["JUPYTER_PATH"] = str(kernel_path(Path(data)))
        # IPC sockets in the temporary folder: the kernel listens on no TCP port.
        kernel = KernelManager(kernel_name=KERNEL_NAME, transport="ipc",
                               ip=str(Path(data) / "kernel"))
        client = NotebookClient(
            nb,
            km=kernel,
            timeout=args.timeout,
            kernel_name=KERNEL_NAME,
            resources={"metadata": {"path": str(args.notebook.resolve().parent)}},
        )
        status = 0
        try:
            client.execute()
        except CellExecutionError as error:
            print(error, file=sys.stderr)
            status = 1
        finally:
            if kernel.has_kernel:  # a kernel handed to nbclient is not nbclient's to stop
                kernel.shutdown_kernel(now=False)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, args.output)
    print(f"executed {args.notebook} -> {args.output}" + (" (a cell failed)" if status else ""))
    return status


if __name__ == "__main__":
    sys.exit(main())
