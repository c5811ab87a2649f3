"""Shared test helpers: run the CLI in-process and capture its exit code and output."""

from __future__ import annotations

import sys

import pytest
import torch

# One thread: the tests' models are small, and two OpenMP threads waiting on each other on a
# busy 2-core machine made some test files ten times slower.
torch.set_num_threads(1)


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run `genlab ARGS...` in this process; returns (exit_code, stdout, stderr)."""
    from genlab.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["genlab", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
