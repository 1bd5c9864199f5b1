"""Training logs: a log file plus console lines (through tqdm so the progress bar stays intact),
and optional TensorBoard scalars."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm import tqdm

LOGGER_NAME = "restoregen.train"


class _TqdmHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def setup_logging(log_file: Path | None, main: bool) -> logging.Logger:
    """The ``restoregen.train`` logger: INFO to the console and ``log_file`` on the main process,
    warnings only elsewhere."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.INFO if main else logging.WARNING)
    logger.propagate = False
    console = _TqdmHandler()
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%H:%M:%S"))
    logger.addHandler(console)
    if main and log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
        logger.addHandler(file_handler)
    return logger


class Scalars:
    """TensorBoard scalars (a no-op when disabled or when tensorboard is not installed)."""

    def __init__(self, log_dir: Path | None) -> None:
        self.writer = None
        if log_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logging.getLogger(LOGGER_NAME).warning("tensorboard is not installed; use_tb_logger is ignored")
            return
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def add(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
