"""The thin I/O shared by the concerns: /proc and /sys files read as text, listing commands run.

Commands run with LC_ALL=C and are killed when the collection is cancelled (its timeout).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Never, TypeVar

from collectors.netstate.errors import CommandFailedError

_T = TypeVar("_T")


def read_text(path: Path) -> str:
    """A /proc or /sys file as text (undecodable bytes replaced).

    Raises:
        OSError: the file cannot be read (FileNotFoundError when it does not exist).
    """
    return path.read_text(encoding="utf-8", errors="replace")


def read_int(path: Path, base: int = 10) -> int | None:
    """A file holding one integer in `base` (empty is 0); None when unreadable or not a number."""
    try:
        return int(read_text(path).strip() or "0", base)
    except (OSError, ValueError):
        return None


async def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a listing command; kill it if the collection is cancelled (timeout)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "LC_ALL": "C"},
    )
    try:
        out, err = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
        raise
    return subprocess.CompletedProcess(argv, proc.returncode or 0, out.decode("utf-8", "replace"),
                                       err.decode("utf-8", "replace"))


async def run_required(argv: Sequence[str]) -> str:
    """The standard output of a command that must succeed.

    Raises:
        CommandFailedError: the command exited non-zero.
    """
    done = await run(argv)
    if done.returncode != 0:
        raise CommandFailedError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[:300]}")
    return done.stdout


@asynccontextmanager
async def first_failure_group() -> AsyncIterator[asyncio.TaskGroup]:
    """An asyncio.TaskGroup that, when a task fails, cancels the rest and raises that failure itself (not an
    ExceptionGroup): for tasks of different result types, each read with `task.result()` after the block."""
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None


async def gather(*aws: Coroutine[object, Never, _T]) -> list[_T]:
    """Await concurrently; on the first failure cancel the rest and raise that failure itself."""
    async with first_failure_group() as group:
        tasks = [group.create_task(aw) for aw in aws]
    return [task.result() for task in tasks]
