"""Seed streams: every random stream of a run gets its own integer seed, disjoint by construction.

Rule.  A seed is the integer

    seed = ((stream * 2**16 + run) * 2**16 + index) * 2**32 + episode

with ``stream`` the code of the stream's purpose (table below), ``run`` the run's seed
(``TrainConfig.seed``, or the ``--seed`` of ``lstm-td3 evaluate``) in ``[0, 2**16)``, ``index``
the env (or evaluation episode) in ``[0, 2**16)`` and ``episode`` that env's episode counter in
``[0, 2**32)``.  Run seeds from ``2**16`` up to the shared ``--seed`` range's ``2**32 - 1`` map
to a second block above the first one,

    seed = (((2**8 + stream) * 2**32 + run) * 2**16 + index) * 2**32 + episode,

(at least ``2**88``, while the first block stays below ``2**67``), so the seeds of runs below
``2**16`` are those of the rule's first version.  The map ``(stream, run, index, episode) ->
seed`` is injective, so no two streams, runs, envs or episodes ever share a seed: run ``s`` and
run ``s + 1`` have disjoint env seeds, and the evaluation seeds can never equal a training
seed.  The integers have up to 89 bits; Gymnasium (``gymnasium.utils.seeding.np_random``) and
NumPy's ``SeedSequence`` take any non-negative int.

=============  ====  ==========================================================================
stream         code  used for
=============  ====  ==========================================================================
``train_env``  0     training env ``index``, its ``episode``-th episode (``env.reset(seed=...)``;
                     also re-seeds the POMDP wrapper's generator)
``test``       1     the test episodes run during training (episode ``index`` of every test)
``eval``       2     ``lstm-td3 evaluate`` / :func:`~lstm_td3.evaluate.evaluate_checkpoint`
                     (held out: its own stream)
``agent``      3     the agent's exploration and target-smoothing generators
``replay``     4     replay sampling
``pomdp``      5     initial POMDP-wrapper generators (re-seeded at every seeded reset anyway)
=============  ====  ==========================================================================
"""

from __future__ import annotations

__all__ = ["MAX_RUN_SEED", "STREAMS", "stream_seed"]

STREAMS: dict[str, int] = {"train_env": 0, "test": 1, "eval": 2, "agent": 3, "replay": 4,
                           "pomdp": 5}
#: largest run seed (``TrainConfig.seed``, ``evaluate --seed``): the shared ``--seed`` range
MAX_RUN_SEED = 2**32 - 1
#: run seeds below this use the rule's first block (the seeds of its first version)
_FIRST_BLOCK_RUNS = 2**16
_SECOND_BLOCK = 2**8
_MAX_INDEX = 2**16 - 1
_MAX_EPISODE = 2**32 - 1


def stream_seed(stream: str, run: int, index: int = 0, episode: int = 0) -> int:
    """The seed of ``stream`` for run ``run``, env or episode ``index`` and episode counter
    ``episode`` (see the module docstring for the rule)."""
    if stream not in STREAMS:
        raise ValueError(f"unknown seed stream {stream!r}: use one of {', '.join(STREAMS)}")
    for name, value, top in (("run seed", run, MAX_RUN_SEED), ("index", index, _MAX_INDEX),
                             ("episode", episode, _MAX_EPISODE)):
        if isinstance(value, bool) or int(value) != value or not 0 <= value <= top:
            raise ValueError(f"{name} must be an integer in [0, {top}], got {value!r}")
    code, run = STREAMS[stream], int(run)
    if run < _FIRST_BLOCK_RUNS:
        return ((code * 2**16 + run) * 2**16 + int(index)) * 2**32 + int(episode)
    return (((_SECOND_BLOCK + code) * 2**32 + run) * 2**16 + int(index)) * 2**32 + int(episode)
