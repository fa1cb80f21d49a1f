"""The entry point's error contract: our errors in one line, anything else with its traceback."""

from __future__ import annotations

import argparse

import pytest

from ich_ray.cli import main as cli_main


def _run_raising(monkeypatch, exc: Exception):
    def build_parser():
        parser = argparse.ArgumentParser()
        parser.set_defaults(_run=lambda args: (_ for _ in ()).throw(exc), command="fake", verbose=False)
        return parser

    monkeypatch.setattr(cli_main, "build_parser", build_parser)
    return cli_main.main([])


def test_expected_error_is_one_line(monkeypatch, capsys):
    assert _run_raising(monkeypatch, ValueError("bad value 3 for size")) == 1
    err = capsys.readouterr().err
    assert err == "ich-ray fake: error: bad value 3 for size\n"


@pytest.mark.parametrize("exc", [KeyError("label_any"), RuntimeError("invariant broken"), TypeError("x")])
def test_unexpected_error_prints_its_traceback(monkeypatch, capsys, exc):
    assert _run_raising(monkeypatch, exc) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and type(exc).__name__ in err
    assert "ich-ray fake: unexpected error" in err
