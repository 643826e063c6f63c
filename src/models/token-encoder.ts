// RepTok's encoder side: a pretrained self-supervised ViT whose [cls] output is the image's single token, of which
// only the input [cls] embedding trains (by default), a frozen target for the cosine loss, and the token adapter
// that maps the token to the decoder's width. Reference: CompVis/RepTok DINOFeatureEncoder, MultiFrameDINOEncoder,
// RepTokConditionEncoder, ResidualProjection. Keys: `encoder.dino.{model,target_model,backbone,new_reg,temp_pos_embed}`
// (the reference's names: `dino` is this token encoder, `backbone` its adapter).
import { F, Tensor, noGrad, randn, tidy, zeros } from '../engine/index.ts';
import { LayerNorm, Linear, Module, init } from '../nn/index.ts';
import { DinoVisionTransformer, type Dinov2Config } from './dinov2.ts';
import { reptokPreprocess } from './preprocess.ts';

/**
 * Which encoder parameters train: 'cls' (the input [cls] embedding only — the paper's setting), 'last:N' (the
 * [cls] embedding and the last N blocks), or 'params:a,b' (parameters named relative to the ViT, e.g. 'norm.weight').
 */
export type TrainableSpec = string;

export function trainableNames(spec: TrainableSpec, model: DinoVisionTransformer): Set<string> {
  const names = new Set([...model.namedParameters()].map(([n]) => n));
  if (spec === 'cls') return new Set(['cls_token']);
  const last = /^last:(\d+)$/.exec(spec);
  if (last) {
    const n = Number(last[1]);
    const depth = model.blocks.length;
    if (n < 0 || n > depth) throw new RangeError(`trainable 'last:${n}': the encoder has ${depth} blocks`);
    return new Set([
      'cls_token',
      ...[...names].filter((k) => Number(/^blocks\.(\d+)\./.exec(k)?.[1] ?? -1) >= depth - n),
    ]);
  }
  if (spec.startsWith('params:')) {
    const list = spec
      .slice('params:'.length)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const unknown = list.filter((n) => !names.has(n));
    if (unknown.length)
      throw new Error(
        `trainable: the encoder has no parameters ${unknown.join(', ')} (names are like cls_token, ` +
          `blocks.11.mlp.fc2.weight, norm.weight)`,
      );
    return new Set(list);
  }
  throw new Error(`trainable must be 'cls', 'last:N' or 'params:a,b', got '${spec}'`);
}

/** The frozen target's [cls] embedding when the target shares the trainable ViT. */
class TargetClsToken extends Module {
  readonly clsToken: Tensor;
  constructor(dim: number) {
    super();
    this.clsToken = this.buffer('cls_token', zeros([1, 1, dim]));
  }
}

/** LayerNorm(Linear(x)) + x zero-padded to the output width; the Linear starts at zero, so it starts as padding. */
export class ResidualProjection extends Module {
  readonly fc: Linear;
  readonly ln: LayerNorm;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
  ) {
    super();
    this.fc = this.module('fc', new Linear(inFeatures, outFeatures));
    this.ln = this.module('ln', new LayerNorm(outFeatures));
    init.zeros_(this.fc.weight);
    init.zeros_(this.fc.bias!);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const skip = this.outFeatures > this.inFeatures ? F.pad(x, [0, this.outFeatures - this.inFeatures]) : x;
      return this.ln.forward(this.fc.forward(x)).add(skip);
    });
  }
}

export interface EncoderOutput {
  token: Tensor; // (B, D): the [cls] output of the trainable encoder
  cos?: Tensor; // (B): 1 − cos(token, frozen target token), when computed
}

/** Image -> token through the ViT, and token -> decoder conditioning through the adapter. */
export class TokenEncoder extends Module {
  /** The self-supervised ViT (e.g. DINOv2) whose [cls] output is the token. */
  readonly model: DinoVisionTransformer;
  /** A full frozen copy when encoder weights beyond [cls] train; else only the frozen [cls] embedding. */
  readonly targetModel: DinoVisionTransformer | TargetClsToken;
  /** Maps a token to the decoder's width (the reference's `backbone`). */
  readonly adapter: ResidualProjection;
  readonly newReg: Tensor; // (1, R', D): checkpoint-compatible, never affects the output (see adapt())
  readonly tempPosEmbed: Tensor; // (1, 1, 1, D)
  readonly trainable: Set<string>;

  constructor(
    vit: Dinov2Config,
    readonly inputSize: number,
    width: number,
    trainable: TrainableSpec = 'cls',
    newRegisters = 2,
  ) {
    super();
    this.model = this.module('model', new DinoVisionTransformer(vit));
    this.trainable = trainableNames(trainable, this.model);
    const shared = this.trainable.size === 1 && this.trainable.has('cls_token');
    this.targetModel = this.module(
      'target_model',
      shared ? new TargetClsToken(vit.embedDim) : new DinoVisionTransformer(vit),
    );
    this.adapter = this.module('backbone', new ResidualProjection(vit.embedDim, width));
    this.newReg = this.param('new_reg', randn([1, newRegisters, vit.embedDim]));
    this.tempPosEmbed = this.param('temp_pos_embed', zeros([1, 1, 1, vit.embedDim]));
    this.freeze();
  }

  /** Only the chosen encoder parameters train; the target never does. */
  freeze(): void {
    this.model.requiresGrad_(false).eval();
    for (const [n, p] of this.model.namedParameters()) if (this.trainable.has(n)) p.requiresGrad_(true);
    this.targetModel.requiresGrad_(false).eval();
  }

  override train(mode = true): this {
    super.train(mode);
    this.model.eval(); // the ViT has no dropout; keep it in eval mode like the reference
    this.targetModel.eval();
    return this;
  }

  get sharedTarget(): boolean {
    return this.targetModel instanceof TargetClsToken;
  }

  /** Loads pretrained ViT weights (official layout) into the trainable model and the frozen target. */
  loadPretrained(sd: Map<string, Tensor>): void {
    this.model.loadStateDict(sd, { context: 'pretrained encoder' });
    if (this.targetModel instanceof TargetClsToken) noGrad(() => this.targetModel.clsToken.copy_(sd.get('cls_token')!));
    else this.targetModel.loadStateDict(sd, { context: 'pretrained encoder (target)' });
  }

  /**
   * The target's token: the frozen network's [cls] output, without gradients. With a shared ViT, `embedded`
   * (the frozen patch embedding of the same x) saves embedding the images twice.
   */
  targetToken(x: Tensor, embedded?: Tensor): Tensor {
    return noGrad(() =>
      this.targetModel instanceof TargetClsToken
        ? this.model.forward(x, { clsToken: this.targetModel.clsToken, embedded })
        : this.targetModel.forward(x),
    );
  }

  /** Images (B, 3, H, W) in [-1, 1] -> token (B, D), plus the cosine loss against the frozen target if asked. */
  encode(images: Tensor, o: { withCosLoss?: boolean } = {}): EncoderOutput {
    return tidy(() => {
      const x = reptokPreprocess(images, this.inputSize);
      // only [cls] trains: the patch embedding is the same for the token and the target pass, so it runs once
      const embedded = this.sharedTarget && o.withCosLoss ? noGrad(() => this.model.embedPatches(x)) : undefined;
      const token = this.model.forward(x, { embedded });
      if (!o.withCosLoss) return { token };
      const target = this.targetToken(x, embedded);
      return { token, cos: F.cosineSimilarity(token.float(), target.float(), -1).rsub(1) };
    });
  }

  /**
   * Token (B, D) -> decoder conditioning (B, 1, W): token + temp_pos_embed through the residual projection. The
   * reference also concatenates the `new_reg` tokens before the per-token projection and drops them after it;
   * they cannot influence the result, so they are not computed.
   */
  adapt(token: Tensor): Tensor {
    return tidy(() => this.adapter.forward(token.unsqueeze(1).add(this.tempPosEmbed.squeeze(1))));
  }
}

/** `encoder`: the wrapper the reference puts around the token encoder (`encoder.dino`; no logic of its own). */
export class EncoderHolder extends Module {
  constructor(readonly tokenEncoder: TokenEncoder) {
    super();
    this.module('dino', tokenEncoder);
  }
}
