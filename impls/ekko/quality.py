"""Quality experiments on a real online CTR model: freshness, scheduling and rollback.

Training runs `CtrModel` on a drifting `ClickStream`, one batch per step (a step
stands for `step_s` seconds of traffic).  Item rows are the parameters that change
online; an inference replica in another DC sees a row only when a dissemination
policy delivers it.  Each step, before training on the batch, the batch is served
from the replica and from the trainer's own table (the always-fresh oracle); the
logloss of both and the staleness of the rows read are recorded.

Policies:
* `delay_steps=d`: every changed row reaches the replica d steps later (Ekko, with d
  from its simulated update latency);
* `checkpoint_period_steps=p`: the whole table is shipped every p steps (arriving
  after `delay_steps`), the checkpoint-and-broadcast practice;
* `scheduler=SchedulerConfig`: rows above the priority percentile go at once, the rest
  are coalesced per key and flushed every `low_flush_s` (in steps of `step_s`);
* `compression=Compression`: each shipped row is a quantised delta with error feedback
  (`impls.ekko.compression`), alone or after the scheduler.

User embeddings are shared by trainer and replica (only item rows are disseminated).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from impls.ekko.compression import Compression, DeltaEncoder
from impls.ekko.scheduler import SchedulerConfig, SloScheduler
from impls.ekko.state import ModelStateManager, StateManagerConfig
from workloads.ekko_updates import ClickStream, CtrModel, logloss


@dataclass
class PolicyResult:
    logloss: float
    oracle_logloss: float
    staleness_mean_s: float
    rows_sent: int
    rows_changed: int
    bytes_sent: float        # in fp32 rows: rows sent times the codec's wire fraction


def run_policy(steps: int, *, step_s: float = 60.0, delay_steps: int = 1, checkpoint_period_steps: int = 0,
               scheduler: SchedulerConfig | None = None, compression: Compression | None = None,
               warmup_steps: int = 20, seed: int = 0, stream_kw: dict | None = None) -> PolicyResult:
    """Train online for `steps` and serve from a replica fed by one dissemination policy."""
    if steps <= warmup_steps:
        raise ValueError(f"steps ({steps}) must exceed warmup_steps ({warmup_steps})")
    if delay_steps < 0 or checkpoint_period_steps < 0:
        raise ValueError("delay_steps and checkpoint_period_steps must be >= 0")
    clicks = ClickStream(seed=seed, **(stream_kw or {}))
    model = CtrModel(clicks.n_users, clicks.n_items, clicks.dim, seed=seed)
    replica = model.item_rows.copy()
    replica_asof = np.zeros(clicks.n_items, dtype=np.int64)     # trainer step the replica row reflects
    trainer_changed = np.full(clicks.n_items, -1, dtype=np.int64)  # last step the trainer changed the row
    in_flight: deque[tuple[int, np.ndarray, np.ndarray, int]] = deque()   # (arrive, items, rows, asof)
    sched = SloScheduler(scheduler, (1.0,)) if scheduler is not None else None
    encoder = DeltaEncoder(compression, replica) if compression is not None else None
    mirror = replica.copy()    # the sender's copy of what the replica will hold
    wire = compression.wire_fraction(replica.shape[1]) if compression is not None else 1.0
    loss_r, loss_o, stale, sent, changed = [], [], [], 0, 0
    for step in range(steps):
        while in_flight and in_flight[0][0] <= step:
            _, items, rows, asof = in_flight.popleft()
            replica[items] = rows
            replica_asof[items] = asof
        users, items, y = clicks.step()
        if step >= warmup_steps:
            loss_r.append(logloss(CtrModel.predict_with(replica, model.user_emb, users, items), y))
            loss_o.append(logloss(CtrModel.predict_with(model.item_rows, model.user_emb, users, items), y))
            behind = trainer_changed[items] >= replica_asof[items]
            stale.append(float(np.mean(np.where(behind, step - replica_asof[items], 0))) * step_s)
        touched, delta = model.train_step(users, items, y)
        trainer_changed[touched] = step
        changed += len(touched)
        if checkpoint_period_steps:
            if (step + 1) % checkpoint_period_steps == 0:
                everything = np.arange(clicks.n_items)
                in_flight.append((step + 1 + delay_steps, everything, model.item_rows.copy(), step + 1))
                sent += clicks.n_items
            continue
        if sched is None:
            go = touched
        else:
            go_list = []
            for key, mag in zip(touched.tolist(), delta.tolist()):
                if sched.submit(0, key, mag, 0, False) is not None:
                    go_list.append(key)
            go_list.extend(sched.flush_due((step + 1) * step_s))
            go = np.unique(np.asarray(go_list, dtype=np.int64))
        if len(go):
            rows = model.item_rows[go] if encoder is None else encoder.ship(go, model.item_rows[go], mirror[go])
            mirror[go] = rows
            in_flight.append((step + 1 + delay_steps, go, rows.copy(), step + 1))
            sent += len(go)
    return PolicyResult(float(np.mean(loss_r)), float(np.mean(loss_o)), float(np.mean(stale)), sent, changed,
                        sent * wire)


VARIANTS = ("scheduler", "compression", "both")


def dissemination_savings(steps: int = 200, variant: str = "both", *,
                          scheduler: SchedulerConfig = SchedulerConfig(percentile=90.0, low_flush_s=600.0),
                          compression: Compression = Compression("int8"), step_s: float = 60.0,
                          delay_steps: int = 1, seed: int = 0) -> dict[str, float]:
    """Bytes shipped and quality with the scheduler, the compression or both, against FIFO on the same stream."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    fifo = run_policy(steps, step_s=step_s, delay_steps=delay_steps, seed=seed)
    run = run_policy(steps, step_s=step_s, delay_steps=delay_steps, seed=seed,
                     scheduler=scheduler if variant != "compression" else None,
                     compression=compression if variant != "scheduler" else None)
    return {
        "bytes_saved_fraction": 1.0 - run.bytes_sent / fifo.bytes_sent,
        "rows_saved_fraction": 1.0 - run.rows_sent / fifo.rows_sent,
        "logloss_fifo": fifo.logloss, "logloss_variant": run.logloss, "logloss_oracle": fifo.oracle_logloss,
        "quality_loss": (run.logloss - fifo.logloss) / fifo.logloss,
        "staleness_fifo_s": fifo.staleness_mean_s, "staleness_variant_s": run.staleness_mean_s,
    }


def freshness_quality(ekko_latency_s: float, checkpoint_period_s: float, checkpoint_transfer_s: float,
                      steps: int = 200, step_s: float = 60.0, seed: int = 0) -> dict[str, float]:
    """Quality and staleness with Ekko's update latency vs checkpoint-and-broadcast vs the oracle."""
    ekko = run_policy(steps, step_s=step_s, delay_steps=int(np.ceil(ekko_latency_s / step_s)), seed=seed)
    ckpt = run_policy(steps, step_s=step_s, checkpoint_period_steps=max(1, round(checkpoint_period_s / step_s)),
                      delay_steps=int(np.ceil(checkpoint_transfer_s / step_s)), seed=seed)
    return {
        "logloss_ekko": ekko.logloss, "logloss_checkpoint": ckpt.logloss, "logloss_oracle": ekko.oracle_logloss,
        "quality_gain_vs_checkpoint": (ckpt.logloss - ekko.logloss) / ckpt.logloss,
        "quality_loss_vs_oracle": (ekko.logloss - ekko.oracle_logloss) / ekko.oracle_logloss,
        "staleness_ekko_s": ekko.staleness_mean_s, "staleness_checkpoint_s": ckpt.staleness_mean_s,
    }


def rollback_experiment(harm: str = "overflow", *, steps: int = 120, inject_step: int = 60, step_s: float = 1.0,
                        baseline_refresh_steps: int = 30, restore_bandwidth_bps: float = 5e9,
                        row_bytes: int = 4096, config: StateManagerConfig = StateManagerConfig(),
                        seed: int = 0) -> dict[str, float]:
    """Inject a harmful update and let the model-state manager detect it, redirect and roll back.

    `harm="overflow"`: one training step with gradients scaled by 1e4 (a low-precision
    overflow); `harm="biased"`: for ten steps, a flood of ten times the normal traffic whose labels are
    all clicks (a biased burst);
    `harm="none"` injects nothing (to check that a healthy run raises no alarm).
    The witness keeps the table at every baseline refresh plus the per-step deltas,
    without applying them; the rollback restores the table as of the manager's target
    step and ships it at `restore_bandwidth_bps` (`row_bytes` per item row): that
    transfer is the simulated time to restore.
    """
    if harm not in ("overflow", "biased", "none"):
        raise ValueError(f"harm must be 'overflow', 'biased' or 'none', got {harm!r}")
    if not 0 < inject_step < steps:
        raise ValueError(f"inject_step must be in (0, steps), got {inject_step}")
    clicks = ClickStream(seed=seed)
    model = CtrModel(clicks.n_users, clicks.n_items, clicks.dim, seed=seed)
    baseline = model.item_rows.copy()
    witness_base, witness_base_step = model.item_rows.copy(), 0
    witness_log: list[tuple[int, np.ndarray, np.ndarray]] = []   # (step, items, delta rows), not applied
    manager = ModelStateManager(config)
    rng = np.random.default_rng(seed + 7)
    redirected_at = restored_at = -1
    restore_s = 0.0
    served_corrupted = 0
    for step in range(steps):
        users, items, y = clicks.step()
        to_baseline = rng.random(len(users)) < config.baseline_share
        if redirected_at >= 0 and restored_at < 0:
            to_baseline[:] = True
        online = ~to_baseline
        online_loss = logloss(CtrModel.predict_with(model.item_rows, model.user_emb, users[online], items[online]),
                              y[online]) if online.any() else 0.0
        base_loss = logloss(CtrModel.predict_with(baseline, model.user_emb, users[to_baseline], items[to_baseline]),
                            y[to_baseline]) if to_baseline.any() else online_loss
        if harm != "none" and step >= inject_step and redirected_at < 0:
            served_corrupted += int(online.sum())
        if restored_at < 0 or step > restored_at:
            for action in manager.observe(step, online_loss, base_loss):
                if action.kind == "redirect" and redirected_at < 0:
                    redirected_at = step
                elif action.kind == "rollback":
                    rows = witness_base.copy()
                    for s, its, d in witness_log:
                        if s < action.to_step:
                            rows[its] += d
                    model.item_rows[:] = rows
                    restore_s = rows.shape[0] * row_bytes * 8 / restore_bandwidth_bps
                    restored_at = step
                    manager.restored(step)
        labels, scale, repeats = y, 1.0, 1
        if harm == "overflow" and step == inject_step:
            scale = 1e4
        if harm == "biased" and inject_step <= step < inject_step + 10:
            labels, repeats = np.ones_like(y), 10
        before = model.item_rows.copy()
        for _ in range(repeats):
            model.train_step(users, items, labels, grad_scale=scale)
        touched = np.flatnonzero((model.item_rows != before).any(axis=1))
        witness_log.append((step, touched, model.item_rows[touched] - before[touched]))
        if (step + 1) % baseline_refresh_steps == 0 and manager.state == "healthy" and step + 1 < inject_step:
            baseline = model.item_rows.copy()
            witness_base, witness_base_step = model.item_rows.copy(), step + 1
            witness_log = [w for w in witness_log if w[0] >= witness_base_step]
    detected = redirected_at >= 0
    return {
        "detected": float(detected),
        "time_to_detect_s": (redirected_at - inject_step) * step_s if detected else float("nan"),
        "rollback_restore_s": restore_s if detected else float("nan"),
        "requests_served_by_corrupted": float(served_corrupted),
        "model_bytes": float(clicks.n_items * row_bytes),
        "time_s": restore_s if detected else float("nan"),
    }
