"""Fans the per-reading checks out to worker processes, so one epoch uses every core.

Signature checks are the one CPU-bound stage (a secp256k1 recovery is ~70 us
here); Beam's embedded runner runs a stage on one core, and its multi-process
mode is slower on small machines (TOOLCHAIN.md). So the stage's DoFn hands its
batches to a process pool: each worker gets a batch's raw bytes, decodes it,
checks every signature and notes each reading's plausibility verdict and data
leaf (``checks.check_records``), and sends back the compact result; the
pipeline's process only merges.
The pool is forked, and its workers started, before the Beam pipeline starts
(``pool_for`` is called by the runner, not inside a DoFn): forking later, from
a thread of the running pipeline, is what fork-safety warnings are about, and
spawning instead would re-import the caller's ``__main__``. Workers receive the
registry once, through the initializer. Operators re-executing a batch verify
in-process: on one machine they already share the cores between them.
When the job names a Ray cluster (``backend``), the same per-batch check runs as
Ray tasks instead (``RayChecks``): the registry goes to the object store once.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import pickle
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from veristream.pipeline.checks import (
    CheckedBatch,
    PlausibilityRules,
    check_candidates,
    check_records,
)
from veristream.pipeline.records import CandidateBatch
from veristream.pipeline.registry import device_keys
from veristream.provers.errors import InputRejected
from veristream.provers.readings import Domain
from veristream.provers.signing import VerdictMemo

# An epoch smaller than this verifies in-process: starting workers costs more.
MIN_READINGS_FOR_POOL = 20_000
# workers when the job does not say (machines with 2+ cores)
DEFAULT_WORKERS = 2

_CONFIG: tuple[Any, Mapping[str, bytes], Mapping[str, Any], int, Any] | None = None
_POOL: ProcessPoolExecutor | None = None
_POOL_KEY: tuple[str, int, int | None] | None = None
_LOCK = threading.Lock()


def auto_workers(readings: int, configured: int | None) -> int:
    """How many worker processes to verify ``readings`` with (1: in-process).

    Unset means two workers on a machine with two or more cores: the roots are the
    same either way, and two workers are faster on idle cores and no slower on busy
    ones (docs/performance.md). ``1`` keeps the stage in-process.
    """
    if readings < MIN_READINGS_FOR_POOL:
        return 1
    cores = os.cpu_count() or 1
    if configured is None:
        configured = DEFAULT_WORKERS if cores >= 2 else 1
    if configured <= 1:
        return 1
    return min(configured, cores)


def _init(config: bytes) -> None:
    global _CONFIG
    _CONFIG = pickle.loads(config)


def _check(element: Any, raw: bool, epoch: tuple[Any, int, int]) -> CheckedBatch:
    assert _CONFIG is not None, "worker was not initialised"
    return _check_with(_CONFIG, element, raw, epoch)


def _check_with(config: Any, element: Any, raw: bool, epoch: tuple[Any, int, int]) -> CheckedBatch:
    domain, keys, devices, _, memo = config
    validation, start_ms, end_ms = epoch
    rules = PlausibilityRules(validation, start_ms, end_ms, devices)
    if raw:
        offset, records = element
        return check_records(offset, records, domain, keys, rules, memo)
    return check_candidates(element, domain, keys, rules, memo)


def backend(verify_on: str, ray_address: str | None) -> str:
    """Where the signature stage fans out: ``"ray"`` or ``"processes"``.

    ``auto`` means Ray when the job names a cluster (``ray.address``): a local
    Ray would only add task overhead to what the process pool does already.
    """
    if verify_on == "auto":
        return "ray" if ray_address else "processes"
    if verify_on not in ("ray", "processes"):
        raise InputRejected(f"verify_on must be 'auto', 'processes' or 'ray', not {verify_on!r}")
    return verify_on


class RayChecks:
    """Stand-in for the process pool that runs each batch's check as a Ray task.

    The registry (and memo) is put in the object store once; each task gets its
    reference and only its batch. Results come back as futures, so the stage
    collects them in submission order as with the pool. The caller connects Ray.
    """

    def __init__(self, config: Any) -> None:
        import ray

        self._config = ray.put(config)
        self._remote = ray.remote(num_cpus=1)(_check_with)

    def check(self, element: Any, raw: bool, epoch: tuple[Any, int, int]) -> Future[CheckedBatch]:
        """One batch's check, as a Ray task."""
        global _RAY_TASKS
        with _LOCK:
            _RAY_TASKS += 1
        ref = self._remote.remote(self._config, element, raw, epoch)
        future: Future[CheckedBatch] = ref.future()
        return future


_RAY: RayChecks | None = None
_RAY_KEY: tuple[str, str, int | None] | None = None
_RAY_TASKS = 0


def ray_tasks() -> int:
    """How many batch checks this process has sent to Ray so far (for accounting and tests)."""
    with _LOCK:
        return _RAY_TASKS


def pool_for(
    workers: int,
    domain: Domain,
    keys: Mapping[str, bytes],
    devices: Mapping[str, Any],
    skew: int,
    memo: VerdictMemo | None = None,
    on: str = "processes",
) -> ProcessPoolExecutor | RayChecks:
    """The shared pool for this registry (re-created when the registry or size changes).

    ``memo``: a ``signing.VerdictMemo`` every worker gets a copy of (an epoch's
    pre-verification); a pool is re-created for another memo. It is told apart by
    identity, which is safe even if an identity were reused: any memo's entries
    are correct, so a worker holding another one only checks more itself.
    ``on="ray"``: a ``RayChecks`` for this registry instead (Ray already connected).
    """
    global _POOL, _POOL_KEY, _RAY, _RAY_KEY
    if on == "ray":
        import ray

        registry = pickle.dumps((domain, device_keys(keys), dict(devices), skew))
        # the stored registry belongs to one Ray connection: a new one puts it again
        session = ray.get_runtime_context().get_job_id()
        ray_key = (hashlib.sha256(registry).hexdigest(), session, None if memo is None else id(memo))
        with _LOCK:
            if _RAY is None or ray_key != _RAY_KEY:
                _RAY = RayChecks((domain, device_keys(keys), dict(devices), skew, memo))
                _RAY_KEY = ray_key
            return _RAY
    registry = pickle.dumps((domain, device_keys(keys), dict(devices), skew))
    key = (hashlib.sha256(registry).hexdigest(), workers, None if memo is None else id(memo))
    with _LOCK:
        if _POOL is None or key != _POOL_KEY:
            if _POOL is not None:
                _POOL.shutdown(wait=False, cancel_futures=True)
            config = pickle.dumps((domain, device_keys(keys), dict(devices), skew, memo))
            _POOL = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_init,
                initargs=(config,),
            )
            _POOL_KEY = key
            # start every worker now, while no pipeline thread is running
            list(_POOL.map(_ping, range(workers)))
        return _POOL


def _ping(index: int) -> int:
    return index


def submit(
    pool: ProcessPoolExecutor | RayChecks, element: Any, rules: Any, raw: bool
) -> Future[CheckedBatch]:
    """Check one batch on a worker (``rules``: the epoch's ``checks.PlausibilityRules``, with
    the pool's registry). ``raw``: ``element`` is ``(offset, [(received_ms, envelope)])`` and
    the future gives ``checks.check_records`` of it; otherwise it is a batch of candidates
    and the future gives ``checks.check_candidates``."""
    if not raw:
        element = CandidateBatch(element)
    # the pool's initializer already gave each worker the registry: only the epoch travels
    epoch = (rules.validation, rules.epoch_start_ms, rules.epoch_end_ms)
    if isinstance(pool, RayChecks):
        return pool.check(element, raw, epoch)
    return pool.submit(_check, element, raw, epoch)


def worker_pids() -> list[int]:
    """Process ids of the shared pool's workers (none when no pool runs): for CPU accounting."""
    with _LOCK:
        if _POOL is None:
            return []
        # ProcessPoolExecutor keeps its processes in a private mapping; read-only here
        processes = getattr(_POOL, "_processes", None) or {}
        return sorted(process.pid for process in processes.values())


def shutdown() -> None:
    """Stop the pool's workers (they are also stopped at interpreter exit); forget Ray's."""
    global _POOL, _POOL_KEY, _RAY, _RAY_KEY
    with _LOCK:
        if _POOL is not None:
            _POOL.shutdown(wait=True, cancel_futures=True)
        _POOL, _POOL_KEY = None, None
        _RAY, _RAY_KEY = None, None


_RAY_TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"


def _drop_token_auth_notice(record: logging.LogRecord) -> bool:
    """False for Ray's notice that a new local cluster uses token authentication (its default)."""
    return not str(record.msg).startswith("Token authentication is enabled for this Ray cluster")


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start local Ray (or connect to ``address``) once per process."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    elif os.environ.get("RAY_ADDRESS"):
        # running as a submitted Ray job (veristream submit): Ray names the cluster
        ray.init(log_to_driver=False)
    else:
        # "local": always a fresh local instance, never a stale or foreign cluster that
        # /tmp/ray/ray_current_cluster happens to name. Ray announces on stderr that it enables
        # token authentication, its default for a new local cluster: that notice is dropped.
        logging.getLogger(_RAY_TOKEN_LOGGER).addFilter(_drop_token_auth_notice)
        ray.init(
            address="local",
            num_cpus=num_cpus or 2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
