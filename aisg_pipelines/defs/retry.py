"""The AISG retry policy for ops that do I/O (LanceDB, the ledger, object storage).

AISG's backoff is 1 s -> 5 s -> 25 s -> 125 s, 4 retries. Dagster's `RetryPolicy` only knows
`delay * (2**n - 1)` (exponential) or `delay * n` (linear), and it retries *every* exception,
including a bad config or an erasure whose verification found traces. So the policy is
applied by `aisg_retry`, which wraps an op/asset body: a transient error (connection refused
or reset, timeouts, LanceDB/object-store I/O errors, a database that went away) raises
`dg.RetryRequested(max_retries=4, seconds_to_wait=<1, 5, 25 or 125>)` and Dagster re-executes
the step after that delay; any other error fails the step at once (deterministic: retrying
changes nothing).

AISG_RETRY_DELAYS_SECONDS (comma separated, default "1,5,25,125") overrides the delays; the
number of delays is the number of retries.
"""


import functools
import inspect
import os

import dagster as dg

DEFAULT_DELAYS = (1.0, 5.0, 25.0, 125.0)
DELAYS_ENV = "AISG_RETRY_DELAYS_SECONDS"
RETRY_TAG = "aisg/retry"

# Errors whose cause is the environment, not the input: worth another try.
_TRANSIENT_MARKERS = (
    "io error", "ioerror", "timed out", "timeout", "connection reset", "connection refused", "connection aborted",
    "broken pipe", "temporarily unavailable", "try again", "too many requests", "slowdown", "service unavailable",
    "server closed the connection", "could not connect", "database is locked", "commit conflict", "retryable",
)
# OSErrors that name a missing or forbidden path: bad configuration, retrying is pointless.
_DETERMINISTIC_OS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError)


class TransientError(RuntimeError):
    """Raise this (or an OSError) from governance code for a failure worth retrying."""


def retry_delays() -> tuple[float, ...]:
    raw = os.environ.get(DELAYS_ENV, "").strip()
    if not raw:
        return DEFAULT_DELAYS
    return tuple(float(x) for x in raw.split(",") if x.strip())


def is_transient(exc: BaseException) -> bool:
    """True for errors of the environment (I/O, network, a locked or vanished database)."""
    if isinstance(exc, (dg.Failure, dg.DagsterInvalidConfigError, ValueError, KeyError, TypeError, AssertionError)):
        return False
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, _DETERMINISTIC_OS):
        return False
    if isinstance(exc, (OSError, ConnectionError, TimeoutError)):
        return True
    try:
        from sqlalchemy.exc import DisconnectionError, OperationalError

        if isinstance(exc, (OperationalError, DisconnectionError)):
            return True
    except ImportError:  # pragma: no cover
        pass
    if isinstance(exc, RuntimeError):  # lance / lancedb surface Rust I/O errors as RuntimeError
        msg = str(exc).lower()
        return any(m in msg for m in _TRANSIENT_MARKERS)
    return False


def _retry_or_raise(exc: Exception, args, kwargs) -> None:
    if isinstance(exc, (dg.RetryRequested, dg.Failure)) or not is_transient(exc):
        raise exc
    context = kwargs.get("context", args[0] if args else None)
    delays = retry_delays()
    n = getattr(context, "retry_number", 0) or 0
    if n >= len(delays):
        raise exc
    if context is not None:
        context.log.warning(
            f"transient {type(exc).__name__}: {str(exc)[:300]}; retry {n + 1} of {len(delays)} in {delays[n]:g} s (AISG backoff)"
        )
    raise dg.RetryRequested(max_retries=len(delays), seconds_to_wait=delays[n]) from exc


def aisg_retry(fn):
    """Wrap an op or asset body with the AISG backoff (see the module docstring). A generator
    body (an asset that yields its events as it goes) stays a generator."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                _retry_or_raise(exc, args, kwargs)

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            _retry_or_raise(exc, args, kwargs)

    return wrapper
