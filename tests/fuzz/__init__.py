"""Coverage-guided fuzzing of every parser in protocol/ (issue 11).

Each ``fuzz_<target>.py`` module is a plain ``check(data: bytes) -> None``: it feeds the
bytes to one parser, lets through only the errors that parser declares, and asserts the
target's properties; anything else propagates as a finding. ``tests.fuzz.run`` wraps a
target in atheris (``make fuzz``); ``tests/fuzz/test_replay.py`` replays every file of
``corpus/<target>/`` and ``crashes/<target>/`` through ``check`` in ``make test``, without
atheris, so a fixed crash stays fixed.
"""
