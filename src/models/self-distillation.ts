// DINO self-distillation (Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", 2021): a
// student sees multi-crop views and matches a momentum teacher's centred, sharpened outputs on the global views.
// Two DINOv2 refinements (Oquab et al., 2023) make it learn in the short runs two CPU cores allow: Sinkhorn-Knopp
// centring (targets that spread the batch over the prototypes from the first step, where DINO's running-mean centre
// leaves near-uniform targets for thousands of steps) and the KoLeo regulariser (spreads the [cls] features, which
// is what k-NN retrieval needs). The `ssl` training stage is the recipe around this method.
//
// Data parallel: both centrings are statistics of the whole global batch, so with several processes their sums go
// through an all-reduce (`Ranks`), as DINO's update_center and DINOv2's distributed Sinkhorn-Knopp do; KoLeo's
// nearest neighbours stay within each process's batch, as in DINOv2.
import { F, Tensor, cat, eye, keep, noGrad, randn, tidy, zeros } from '../engine/index.ts';
import { GELU, Linear, Module, Sequential } from '../nn/index.ts';
import { DinoVisionTransformer, type Dinov2Config } from './dinov2.ts';
import { encoderInput } from './preprocess.ts';

export interface SelfDistillationConfig {
  encoder: Dinov2Config;
  /** Multi-crop: local views per sample after the two global views. */
  localCrops: number;
  head: { hidden: number; bottleneck: number; outDim: number };
  /** Teacher EMA momentum, cosine-scheduled from the first to the second value. */
  teacherMomentum: [number, number];
  teacherTemp: number;
  studentTemp: number;
  /** 'sinkhorn' (DINOv2: Sinkhorn-Knopp over the batch) or 'ema' (DINO: subtract a running mean of teacher outputs). */
  centering: 'sinkhorn' | 'ema';
  /** Running-mean momentum of the 'ema' centre. */
  centerMomentum: number;
  /** Weight of the KoLeo regulariser on the student's global-view [cls] features (0 = off). */
  koleoWeight: number;
}

/** The processes of a data-parallel run: how many, and the sum or maximum of a tensor over all of them (in place). */
export interface Ranks {
  size: number;
  sum(t: Tensor): Tensor;
  max(t: Tensor): Tensor;
}
/** One process alone: sums and maxima are the tensor itself. */
export const ONE_RANK: Ranks = { size: 1, sum: (t) => t, max: (t) => t };

// ---------------------------------------------------------------------------------------------------------------
// Networks
// ---------------------------------------------------------------------------------------------------------------

/**
 * DINO's projection head: MLP -> L2-normalised bottleneck -> a linear layer with unit-norm rows (weight norm, g = 1).
 */
class DinoHead extends Module {
  readonly mlp: Sequential;
  readonly lastLayer: Tensor; // (outDim, bottleneck)
  constructor(inDim: number, c: SelfDistillationConfig['head']) {
    super();
    this.mlp = this.module(
      'mlp',
      new Sequential(
        new Linear(inDim, c.hidden),
        new GELU(),
        new Linear(c.hidden, c.hidden),
        new GELU(),
        new Linear(c.hidden, c.bottleneck),
      ),
    );
    this.lastLayer = this.param('last_layer', randn([c.outDim, c.bottleneck]).mul_(0.02));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => F.linear(F.normalize(this.mlp.forward(x), 2, -1), F.normalize(this.lastLayer, 2, 1)));
  }
}

/** Student or teacher: the ViT (`backbone.*`, the reference's name) and the DINO head on its [cls] output. */
class Network extends Module {
  readonly vit: DinoVisionTransformer;
  readonly head: DinoHead;
  constructor(c: SelfDistillationConfig) {
    super();
    this.vit = this.module('backbone', new DinoVisionTransformer(c.encoder).initWeights());
    this.head = this.module('head', new DinoHead(c.encoder.embedDim, c.head));
  }
  /** [cls] features (B, D) and head logits (B, K). */
  forward(views: Tensor): { cls: Tensor; logits: Tensor } {
    return tidy(() => {
      const cls = this.vit.forward(encoderInput(views));
      return { cls, logits: this.head.forward(cls) };
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Centring and regularisation
// ---------------------------------------------------------------------------------------------------------------

/**
 * Sinkhorn-Knopp centring (DINOv2): teacher logits (N, K) -> targets (N, K), each row a distribution, alternately
 * normalised so that every prototype receives an equal share of the batch: of the global batch over all `ranks`
 * (each holding N rows), whose per-prototype sums are all-reduced.
 */
export function sinkhornKnopp(logits: Tensor, temp: number, iterations = 3, ranks: Ranks = ONE_RANK): Tensor {
  return tidy(() => {
    const [n, K] = logits.shape as [number, number];
    const N = n * ranks.size; // rows of the global batch
    const z = logits.float().div(temp);
    // (K, n); one shift for the global batch (its maximum) keeps exp() finite and cancels in the normalisations —
    // a shift per rank would not: it would weigh the ranks' columns differently in the prototypes' sums
    let q = z.sub(ranks.max(z.max())).exp().transpose(0, 1);
    q = q.div(ranks.sum(q.sum()));
    for (let i = 0; i < iterations; i++) {
      q = q.div(ranks.sum(q.sum(1, true))).div(K); // every prototype: total mass 1/K over the global batch
      q = q.div(q.sum(0, true)).div(N); // every sample: total mass 1/N
    }
    return q.mul(N).transpose(0, 1);
  });
}

/**
 * KoLeo regulariser (Sablayrolles et al., 2019; DINOv2): −mean log distance of each L2-normalised feature to its
 * nearest neighbour in the batch. Minimising it spreads the features uniformly.
 */
export function koleoLoss(x: Tensor, eps = 1e-8): Tensor {
  return tidy(() => {
    const z = F.normalize(x.float(), 2, -1, eps); // (N, D)
    const n = z.shape[0]!;
    const self = eye(n, n, { device: z.device }).mul(2);
    const nearest = noGrad(() => z.mm(z.transpose(0, 1)).sub(self).argmax(1)); // (N,) self excluded
    return z
      .sub(z.index([nearest]))
      .add(eps)
      .norm(2, -1)
      .add(eps)
      .log()
      .neg()
      .mean();
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The method
// ---------------------------------------------------------------------------------------------------------------

/** Student, momentum teacher and centre, with the loss of one multi-crop batch and the teacher's update. */
export class SelfDistillation extends Module {
  readonly config: SelfDistillationConfig;
  readonly student: Network;
  readonly teacher: Network;
  readonly center: Tensor; // (1, outDim)
  /** The last batch's mean teacher output (the 'ema' centring's update), kept between loss() and updateTeacher(). */
  #teacherMean: Tensor | null = null;
  /** The data-parallel processes whose batches together make the global batch the centring sees. */
  readonly #ranks: Ranks;

  constructor(config: SelfDistillationConfig, o: { ranks?: Ranks } = {}) {
    super();
    const c = (this.config = structuredClone(config));
    this.#ranks = o.ranks ?? ONE_RANK;
    if (c.centering !== 'sinkhorn' && c.centering !== 'ema')
      throw new RangeError(`centering must be 'sinkhorn' or 'ema', got '${c.centering}'`);
    this.student = this.module('student', new Network(c));
    this.teacher = this.module('teacher', new Network(c));
    this.teacher.loadStateDict(this.student.stateDict());
    this.teacher.requiresGrad_(false);
    this.center = this.buffer('center', zeros([1, c.head.outDim]));
  }

  /** The encoder this method trains: the teacher's ViT (what is exported and evaluated). */
  get encoder(): DinoVisionTransformer {
    return this.teacher.vit;
  }

  /**
   * The loss of one batch of views [global, global, local...] (each (B, C, H, W)): cross-entropy of the student's
   * outputs on every view against the teacher's targets on the other global view, plus λ·KoLeo.
   */
  loss(views: Tensor[]): { loss: Tensor; metrics: Record<string, number> } {
    const c = this.config;
    const globals = cat(views.slice(0, 2)); // (2B, C, H, W)
    const t = noGrad(() => this.teacher.forward(globals).logits.float()); // (2B, K)
    const g = this.student.forward(globals);
    const s = [g.logits, ...(c.localCrops ? [this.student.forward(cat(views.slice(2))).logits] : [])];
    const studentOut = cat(s)
      .float()
      .div(c.studentTemp)
      .chunk(2 + c.localCrops); // per view (B, K)
    const targets = noGrad(() =>
      c.centering === 'sinkhorn'
        ? sinkhornKnopp(t, c.teacherTemp, 3, this.#ranks)
        : t.sub(this.center).div(c.teacherTemp).softmax(-1),
    ).chunk(2);
    const terms = targets.flatMap((q, iq) =>
      studentOut.flatMap((sv, v) => (v === iq ? [] : [q.mul(sv.logSoftmax(-1)).sum(-1).neg().mean()])),
    );
    const dino = terms.reduce((a, b) => a.add(b)).div(terms.length);
    const koleo = c.koleoWeight
      ? g.cls
          .chunk(2)
          .map((x) => koleoLoss(x))
          .reduce((a, b) => a.add(b))
      : null;
    if (c.centering === 'ema') {
      this.#teacherMean?.dispose();
      // the global batch's mean (DINO's update_center): every rank's sum over its rows, all-reduced
      const rows = t.shape[0]! * this.#ranks.size;
      this.#teacherMean = keep(noGrad(() => this.#ranks.sum(t.sum(0, true)).div(rows))); // outlives the step's scope
    }
    const metrics: Record<string, number> = {
      entropy: noGrad(() => targets[0]!.mul(targets[0]!.clampMin(1e-12).log()).sum(-1).neg().mean().item()),
    };
    if (koleo) metrics.koleo = koleo.item();
    return { loss: koleo ? dino.add(koleo.mul(c.koleoWeight)) : dino, metrics };
  }

  /**
   * After an optimizer step (`step` of `total`): teacher = m·teacher + (1 − m)·student with m cosine-scheduled
   * towards 1; the 'ema' centre follows the teacher's mean output.
   */
  updateTeacher(step: number, total: number): void {
    const c = this.config;
    noGrad(() =>
      tidy(() => {
        const [m0, m1] = c.teacherMomentum;
        const m = m1 - ((m1 - m0) * (Math.cos((Math.PI * step) / total) + 1)) / 2;
        const st = this.student.stateDict();
        for (const [k, p] of this.teacher.stateDict()) p.mul_(m).add_(st.get(k)!, 1 - m);
        if (this.#teacherMean) this.center.mul_(c.centerMomentum).add_(this.#teacherMean, 1 - c.centerMomentum);
      }),
    );
  }

  override dispose(): void {
    this.#teacherMean?.dispose();
    this.#teacherMean = null;
    super.dispose();
  }
}
