// The trainer shared by every stage: the optimisation loop (AdamW with decay/no-decay groups, warm-up + cosine LR,
// gradient accumulation and clipping, EMA), progress and metrics, periodic validation and samples, atomic
// checkpoints with exact resume, a clean stop on Ctrl-C, and a clear stop on a non-finite loss.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  Generator,
  Tensor,
  manualSeed,
  noGrad,
  runtimeInfo,
  setNumThreads,
  tidy,
  type Device,
} from '../engine/index.ts';
import type { Module } from '../nn/index.ts';
import type { DataInfo, TrainingInfo } from '../models/model-file.ts';
import { ONE_RANK, type Ranks } from '../models/self-distillation.ts';
import type { ImageArray } from '../data/image-array.ts';
import { AdamW, EMA, LRScheduler, clipGradNorm, warmupCosine } from '../optim/index.ts';
import type { BatchPosition } from '../data/batches.ts';
import { atomicWriteText, removeStaleTemporaries } from '../io/atomic.ts';
import { imageGrid, writeImage } from '../io/image.ts';
import { makeOutputDir } from '../io/out-dir.ts';
import { checkpointName, loadLatestCheckpoint, saveCheckpoint, truncateMetrics } from './checkpoint.ts';
import { Progress } from './progress.ts';
import { checkConfig, type CommonConfig } from './config.ts';
import { precisionReason, resolvePrecision, withAutocast } from './autocast.ts';
import { DistributedError, type DataParallel } from './distributed.ts';
import { SINGLE, type Shard } from '../data/batches.ts';

/** A source of batches whose position a checkpoint can store and restore. */
export interface BatchSource<B> {
  next(): Promise<B & { waitMs: number }>;
  readonly position: BatchPosition;
  close(): void;
}

/**
 * What a stage gets from the trainer: the config, the output folder, the random stream, the EMA, and the pieces
 * every stage needs (evaluation with EMA weights in eval mode, sample grids, what the model files record).
 */
export class StageContext<C extends CommonConfig = CommonConfig> {
  /** The stage's random stream (noise, times, label dropout...): part of every checkpoint. */
  readonly generator: Generator;
  /** The current step (0-based). */
  step = 0;
  /** The EMA weights (sampling uses them), or null when EMA is off. */
  ema: EMA | null = null;
  /** The command that started the run (recorded in the model files). */
  readonly command: string;
  readonly log: (msg: string) => void;
  /** This process's part of every global batch in data-parallel training (else the whole batch). */
  readonly shard: Shard;
  /** Where the model trains; stages put every tensor they make (noise, labels, validation material) there too. */
  readonly device: Device;
  /** Sums over the data-parallel processes, for statistics of the global batch computed in a loss. */
  readonly ranks: Ranks;

  constructor(
    readonly config: C,
    readonly out: string,
    o: { log?: (msg: string) => void; command?: string; shard?: Shard; device?: Device; ranks?: Ranks } = {},
  ) {
    this.shard = o.shard ?? SINGLE;
    this.ranks = o.ranks ?? ONE_RANK;
    this.device = o.device ?? 'cpu';
    this.generator = new Generator({ seed: config.seed, device: this.device });
    // data parallel: batch-major draws are made for the global batch, each rank keeping its rows (creation.ts)
    if (this.shard.world > 1) this.generator.batchShard = this.shard;
    this.log = o.log ?? ((m: string) => process.stderr.write(`${m}\n`));
    this.command = o.command ?? process.argv.slice(1).join(' ');
  }

  /**
   * Runs `fn` as evaluation: with the EMA weights (when EMA is on), `module` in eval mode, without gradients. The
   * trained weights and the module's mode come back when it returns or throws, so `fn` must be synchronous.
   */
  evaluate<T>(module: Module, fn: () => T): T {
    const wasTraining = module.training;
    module.eval();
    try {
      const out = noGrad(() => (this.ema ? this.ema.withWeights(fn) : fn()));
      if (out instanceof Promise) throw new Error('StageContext.evaluate: fn must be synchronous');
      return out;
    } finally {
      module.train(wasTraining);
    }
  }

  /** Writes images (B, C, H, W) as one picture, `nrow` per row, to <out>/samples/step-NNNNNN.png; returns its path. */
  async writeSamplePicture(images: Tensor, nrow: number): Promise<string> {
    const dir = join(this.out, 'samples');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, `step-${String(this.step + 1).padStart(6, '0')}.png`);
    const grid = imageGrid(images, { nrow });
    try {
      await writeImage(path, grid);
    } finally {
      grid.dispose();
    }
    return path;
  }

  /** What a model file records about its training: the command, the steps, the resolved config. */
  get trainingInfo(): TrainingInfo {
    return { command: this.command, step: this.config.steps, config: this.config };
  }

  /** What a model file records about its data: the data set, image size, channels, value range, class names. */
  dataInfo(d: ImageArray): DataInfo {
    return { name: this.config.data, imageSize: [d.h, d.w], channels: d.c, valueRange: [-1, 1], classes: d.classes };
  }
}

export interface Stage<C extends CommonConfig, B> {
  /** Everything with state that must be checkpointed; its trainable parameters are optimised. */
  model: Module;
  /** Sub-module whose weights are averaged for sampling (default: model). */
  emaTarget?: Module;
  /** Batches for a given start position. */
  batches(position: BatchPosition): BatchSource<B>;
  /** The loss of one (micro-)batch; runs inside a memory scope, must not call backward. */
  step(batch: B, ctx: StageContext<C>): { loss: Tensor; metrics?: Record<string, number> };
  /** After each optimizer step (e.g. a teacher's EMA). */
  afterStep?(ctx: StageContext<C>): void;
  validate?(ctx: StageContext<C>): Promise<Record<string, number>>;
  samples?(ctx: StageContext<C>): Promise<string>;
  /** After the last step: export artifacts, final evaluation. */
  finish?(ctx: StageContext<C>): Promise<Record<string, unknown>>;
  dispose?(): void;
}

export class NonFiniteLossError extends Error {
  constructor(
    readonly step: number,
    value: number,
    lastCheckpoint: string | null,
  ) {
    super(
      `the loss became ${value} at step ${step + 1}; training stopped.` +
        `${lastCheckpoint ? ` The last good checkpoint is ${lastCheckpoint}.` : ''}\n` +
        'Try a lower learning rate (--set lr=...), gradient clipping (--set clipGrad=1), ' +
        'a longer warm-up (--set warmupSteps=...), or fp32 precision.',
    );
    this.name = 'NonFiniteLossError';
  }
}

export interface RunOptions {
  out: string;
  resume?: boolean;
  force?: boolean;
  /** Overrides the configured number of steps (e.g. --steps). */
  steps?: number;
  /** Stop after this many steps of this run (tests use it to simulate an interruption). */
  stopAfter?: number;
  log?: (msg: string) => void;
  /** The command line recorded in the model files (default: this process's arguments). */
  command?: string;
  /** Data-parallel training: this process is one rank (see distributed.ts). */
  parallel?: DataParallel;
  /** 'cpu' (default), 'cuda' or 'cuda:N'. */
  device?: Device;
}

export interface RunResult {
  step: number;
  interrupted: boolean;
  final?: Record<string, unknown>;
  lastCheckpoint: string | null;
}

/** Parameters without weight decay: biases, norm scales, embeddings' 1-D vectors and positional/special tokens. */
function noDecay(name: string, p: Tensor): boolean {
  return (
    p.ndim <= 1 || /(^|\.)(pos_embed|cls_token|register_tokens|mask_token|new_reg|temp_pos_embed|scale)$/.test(name)
  );
}

function prepareOutDir(out: string, o: RunOptions): void {
  makeOutputDir(out, 'run folder'); // first: it refuses a file's name and pseudo file systems
  const used = readdirSync(out).some((f) => f === 'config.json' || f.startsWith('step-'));
  if (used && !o.resume && !o.force) {
    throw new Error(
      `${out} already holds a run; pass --resume to continue it or --force to start over (its checkpoints are deleted)`,
    );
  }
  if (used && o.force && !o.resume)
    for (const f of readdirSync(out)) if (f.startsWith('step-') || f === 'metrics.jsonl') rmSync(join(out, f));
  removeStaleTemporaries(out); // of checkpoint writes a kill interrupted
}

export async function runStage<C extends CommonConfig, B>(
  config: C,
  makeStage: (ctx: StageContext<C>) => Promise<Stage<C, B>>,
  o: RunOptions,
): Promise<RunResult> {
  // data parallel: rank 0 (the lead) alone writes files and logs
  const dp = o.parallel ?? null;
  const lead = !dp || dp.isLead;
  const device = o.device ?? 'cpu';
  const precision = resolvePrecision(config.precision, device);
  const ctx = new StageContext(checkConfig({ ...config, steps: o.steps ?? config.steps, precision }), o.out, {
    ...o,
    log: lead ? o.log : () => {},
    shard: dp?.shard,
    ranks: dp?.ranks,
    device,
  });
  const { config: cfg, log } = ctx;
  const total = cfg.steps;
  if (lead) prepareOutDir(o.out, o);
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  log(`config (${join(o.out, 'config.json')}):\n${JSON.stringify(cfg)}`);
  log(`runtime: ${JSON.stringify(runtimeInfo())}`);
  if (config.precision === 'auto') log(`precision: ${precision} (auto: ${precisionReason(device)})`);

  manualSeed(cfg.seed); // model initialisation draws from the global generator: same seed, same initial weights
  if (dp)
    log(
      `data parallel: ${dp.group.worldSize} processes (${dp.group.backend}), ` +
        `${cfg.batchSize / dp.group.worldSize} images each per batch`,
    );
  const stage = await makeStage(ctx);
  if (device !== 'cpu') stage.model.to({ device });
  dp?.syncModule(stage.model);
  const params = [...stage.model.namedParameters()].filter(([, p]) => p.requiresGrad);
  const opt = new AdamW(
    [
      { params: params.filter(([n, p]) => !noDecay(n, p)).map(([, p]) => p), weightDecay: cfg.weightDecay },
      { params: params.filter(([n, p]) => noDecay(n, p)).map(([, p]) => p), weightDecay: 0 },
    ].filter((g) => g.params.length > 0),
    { lr: cfg.lr, betas: cfg.betas },
  );
  const sched = new LRScheduler(opt, warmupCosine({ warmup: cfg.warmupSteps, total, minRatio: cfg.minLrRatio }));
  dp?.attach(params.map(([, p]) => p));
  const ema = cfg.emaDecay > 0 ? new EMA(stage.emaTarget ?? stage.model, cfg.emaDecay) : null;
  ctx.ema = ema;

  // resume: from the newest checkpoint that loads (a damaged one is skipped with a warning)
  let start = 0;
  let position: BatchPosition = { epoch: 0, index: 0 };
  const latest = o.resume
    ? loadLatestCheckpoint(
        o.out,
        (c, path) => {
          stage.model.loadStateDict(c.model, { context: path });
          if (ema && c.ema) ema.loadStateDict(c.ema);
          opt.loadStateDict(c.optimizer);
          ctx.generator.setState(c.rng.get('train')!);
          Generator.default().setState(c.rng.get('global')!);
          for (const t of [...c.model.values(), ...(c.ema?.values() ?? []), ...c.rng.values()]) t.dispose();
          return { step: c.step, data: c.data };
        },
        log,
      )
    : null;
  let lastCheckpoint: string | null = latest?.path ?? null;
  if (o.resume && !latest) log(`no checkpoint in ${o.out}: starting from step 0`);
  if (latest) {
    start = latest.result.step;
    position = latest.result.data;
    if (start > total)
      throw new Error(
        `${latest.path} is at step ${start}, past the ${total} steps of this run; ` +
          `pass --steps ${start} or more to continue it`,
      );
    if (lead) truncateMetrics(join(o.out, 'metrics.jsonl'), start);
    log(`resumed from ${latest.path} at step ${start}`);
  }

  const source = stage.batches(position);
  // the run has started: only now does the folder hold it (a failed start leaves no config.json behind)
  if (lead) atomicWriteText(join(o.out, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  const checkpoint = (step: number): string => {
    if (!lead) return (lastCheckpoint = join(o.out, checkpointName(step)));
    const path = saveCheckpoint(
      o.out,
      {
        step,
        model: stage.model.stateDict(),
        ema: ema?.shadow ?? null,
        optimizer: opt.stateDict(),
        rng: new Map([
          ['train', ctx.generator.getState()],
          ['global', Generator.default().getState()],
        ]),
        data: source.position,
        config: cfg,
      },
      cfg.keepCheckpoints,
    );
    lastCheckpoint = path;
    return path;
  };

  // A test hook (test/train/trainer.test.ts): REPTOK_TRAIN_PAUSE_AFTER=k makes the run say so on stderr after step k
  // and wait there for a signal, so that a test kills it at a known step instead of racing the run's end.
  const pauseAfter = pauseAfterFromEnv();
  let interrupted = false;
  let resumeFromPause = (): void => {};
  const onSignal = (): void => {
    interrupted = true;
    resumeFromPause();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const progress = lead ? new Progress(total, start, cfg.logEvery, join(o.out, 'metrics.jsonl')) : null;
  // a failed collective names the step and how to continue
  const collective = <T>(what: string, step: number, fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      throw new DistributedError(
        `${what} failed at step ${step + 1} on rank ${dp!.rank}: ${(e as Error).message}\n` +
          'Another worker has probably stopped (see its error), or the network failed. ' +
          (lastCheckpoint
            ? `The last checkpoint is ${lastCheckpoint}; continue with --resume (with any number of processes).`
            : 'No checkpoint was written yet.'),
      );
    }
  };
  let step = start;
  try {
    for (; step < total; step++) {
      ctx.step = step;
      const lr = sched.set(step);
      let lossSum = 0;
      let waitMs = 0;
      const metrics: Record<string, number> = {};
      for (let micro = 0; micro < cfg.gradAccum; micro++) {
        const batch = toDevice(await source.next(), device);
        waitMs += batch.waitMs;
        const value = tidy(() => {
          const out = withAutocast(precision, () => stage.step(batch, ctx), device);
          dp?.beforeBackward(micro === cfg.gradAccum - 1); // no all-reduce on accumulation-only micro-steps
          out.loss.div(cfg.gradAccum).backward();
          for (const [k, v] of Object.entries(out.metrics ?? {})) metrics[k] = (metrics[k] ?? 0) + v / cfg.gradAccum;
          return out.loss.item();
        });
        disposeBatch(batch);
        lossSum += value / cfg.gradAccum;
      }
      if (dp) {
        metrics.comm_ms = collective('the all-reduce of gradients', step, () => dp.reduceGradients()).waitMs;
        const keys = Object.keys(metrics);
        const avg = collective('the all-reduce of losses', step, () =>
          dp.mean([lossSum, ...keys.map((k) => metrics[k]!)]),
        );
        lossSum = avg[0]!;
        keys.forEach((k, i) => (metrics[k] = avg[i + 1]!));
      }
      if (!Number.isFinite(lossSum)) throw new NonFiniteLossError(step, lossSum, lastCheckpoint);
      const gradNorm =
        cfg.clipGrad > 0
          ? clipGradNorm(
              opt.groups.flatMap((g) => g.params),
              cfg.clipGrad,
            )
          : NaN;
      opt.step();
      opt.zeroGrad();
      ema?.update(Math.min(cfg.emaDecay, (1 + step) / (10 + step)));
      stage.afterStep?.(ctx);
      progress?.step(
        step,
        { loss: lossSum, ...metrics, lr, ...(cfg.clipGrad > 0 ? { grad_norm: gradNorm } : {}) },
        waitMs,
      );
      const done = step + 1;
      if (done === pauseAfter) {
        log(`paused after step ${done} (REPTOK_TRAIN_PAUSE_AFTER): waiting for a signal`);
        await new Promise<void>((r) => {
          resumeFromPause = r;
          if (interrupted) r();
        });
      }
      await new Promise((r) => setImmediate(r)); // a macrotask turn: lets signals (Ctrl-C) and worker messages in
      if (dp) interrupted = collective('agreeing on a stop', step, () => dp.any(interrupted));
      if (interrupted) {
        progress?.note(`interrupted: checkpoint ${checkpoint(done)} written; continue with --resume`);
        step = done;
        break;
      }
      if (done % cfg.checkpointEvery === 0 || done === total) checkpoint(done);
      if (lead && stage.validate && (done % cfg.valEvery === 0 || done === total)) {
        const v = await noGrad(() => stage.validate!(ctx));
        progress!.note(`validation at step ${done}: ${JSON.stringify(v)}`);
        writeFileSync(join(o.out, 'metrics.jsonl'), `${JSON.stringify({ step: done, validation: v })}\n`, {
          flag: 'a',
        });
      }
      if (lead && stage.samples && (done % cfg.sampleEvery === 0 || done === total))
        progress!.note(`samples: ${await stage.samples(ctx)}`);
      if (o.stopAfter !== undefined && done - start >= o.stopAfter) {
        step = done;
        break;
      }
    }
    if (step === total && !interrupted && o.stopAfter === undefined) {
      const final = lead && stage.finish ? await stage.finish(ctx) : undefined;
      if (progress) log(`trained ${total} steps in ${progress.elapsedS.toFixed(0)} s`);
      return { step, interrupted, final, lastCheckpoint };
    }
    return { step, interrupted, lastCheckpoint };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    source.close();
  }
}

/** The batch with its tensors moved to `device` (the CPU ones disposed). */
function toDevice<B>(b: B, device: Device): B {
  if (device === 'cpu') return b;
  const move = (v: unknown): unknown => {
    if (v instanceof Tensor) {
      const moved = v.to(device);
      v.dispose();
      return moved;
    }
    return Array.isArray(v) ? v.map(move) : v;
  };
  return Object.fromEntries(Object.entries(b as object).map(([k, v]) => [k, move(v)])) as B;
}

function pauseAfterFromEnv(): number | undefined {
  const v = process.env.REPTOK_TRAIN_PAUSE_AFTER;
  if (v === undefined || v === '') return undefined;
  if (!/^[1-9]\d*$/.test(v)) throw new Error(`REPTOK_TRAIN_PAUSE_AFTER must be a step number ≥ 1, got '${v}'`);
  return Number(v);
}

function disposeBatch(b: unknown): void {
  if (b instanceof Tensor) return b.dispose();
  if (Array.isArray(b)) return b.forEach(disposeBatch);
  if (b && typeof b === 'object')
    for (const v of Object.values(b)) if (v instanceof Tensor || Array.isArray(v)) disposeBatch(v);
}
