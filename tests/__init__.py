"""restoregen's tests, a package: shared helpers are plain modules imported as ``tests.…``.

pytest imports test files with ``--import-mode=importlib`` and puts the repository root on
``sys.path`` (``pythonpath`` in pyproject.toml), so any subset of test paths collects in any order;
``conftest.py`` files hold fixtures and hooks only.
"""
