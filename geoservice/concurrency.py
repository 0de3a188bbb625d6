"""Blocking store calls off the event loop, at the lowest cost per call.

Why not ``starlette.concurrency.run_in_threadpool``: anyio's thread hop (capacity
limiter, cancel scope, run-vars) was a tenth of the CPU of a feature-by-id request.
``loop.run_in_executor`` on one process-wide pool does the same job for the hot read
paths.  The pool is sized like anyio's default limiter (40 threads).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_POOL = ThreadPoolExecutor(max_workers=40, thread_name_prefix="geoservice-io")


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` on the shared pool and await its result."""
    call = functools.partial(fn, *args, **kwargs) if kwargs else functools.partial(fn, *args)
    return await asyncio.get_running_loop().run_in_executor(_POOL, call)
