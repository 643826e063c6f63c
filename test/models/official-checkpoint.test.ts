// The released RepTok checkpoint format (reptok/official-ckpt-tiny: a Lightning pickle of TrainerModuleLatentFlow at
// tiny size): every case of the fixture within its stated tolerance, the report of what was skipped, and variants
// of the file written by the test (no EMA weights, unknown extra prefixes, truncated, a code-running global inside
// hyper_parameters).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Tensor, autocast, noGrad, tidy, zeros } from '../../src/index.ts';
import { loadSafetensors } from '../../src/io/index.ts';
import { loadTorchCheckpoint } from '../../src/io/torch-checkpoint.ts';
import { PickledObject } from '../../src/io/pickle.ts';
import { loadOfficialCheckpoint, type OfficialCheckpoint } from '../../src/models/official-checkpoint.ts';
import { classField } from '../../src/models/generator.ts';
import { generate } from '../../src/flow/token-flow.ts';
import { assertClose, fixturesRoot, type Tolerance } from '../helpers.ts';
import { ZipFile } from '../../src/io/zip.ts';
import { PickleCall, writeTorchSave, zipStored } from '../torch-save-writer.ts';

// ---- the fixture: weights, cases and tolerances all from REPTOK_FIXTURES (a missing file fails)
const dir = join(fixturesRoot(), 'reptok', 'official-ckpt-tiny');
for (const f of ['config.json', 'cases.safetensors', 'reptok-tiny.ckpt', 'monolith.yaml'])
  assert.ok(existsSync(join(dir, f)), `fixture ${join(dir, f)} is missing: set REPTOK_FIXTURES`);
const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
const cases = loadSafetensors(join(dir, 'cases.safetensors')).tensors;
const ckpt = join(dir, config.file);
const c = (k: string): Tensor => {
  const t = cases.get(k);
  assert.ok(t, `fixture case ${k} missing`);
  return t;
};
const tol = (k: string, output?: string): Tolerance => {
  const t = config.cases[k].tolerance;
  return output ? t[output] : t;
};
// The DINOv2 head count is stored nowhere (the release's is the 64-dimensional default); the tiny model's is in
// the fixture's config.
const options = { encoder: { numHeads: config.tiny_sizes.dino.num_heads } };

let cached: OfficialCheckpoint | null = null;
const load = (): OfficialCheckpoint => (cached ??= loadOfficialCheckpoint(ckpt, options));
const tmp = mkdtempSync(join(tmpdir(), 'reptok-official-'));

// ---------------------------------------------------------------------------------------------------------------
// The fixture's cases
// ---------------------------------------------------------------------------------------------------------------

test('architecture, scale factor and image size come from the hyper-parameters and the shapes', () => {
  const m = load();
  const t = config.tiny_sizes;
  const tc = m.tokenizer.config;
  assert.equal(tc.tokenScale, t.scale_factor);
  assert.deepEqual(tc.imageSize, [t.image_size, t.image_size]);
  assert.deepEqual(m.tokenizer.gridShape, t.latent_shape);
  assert.equal(tc.decoder.width, t.decoder.width);
  assert.equal(tc.decoder.depth, t.decoder.depth);
  assert.equal(tc.decoder.dHead, t.decoder.d_head);
  assert.deepEqual(tc.decoder.patchSize, t.decoder.patch);
  assert.equal(tc.mapping.width, t.decoder.mapping_width);
  assert.equal(tc.mapping.depth, t.decoder.mapping_depth);
  assert.deepEqual(tc.vae!.blockOutChannels, t.vae_diffusers_config.block_out_channels);
  assert.equal(tc.vae!.normNumGroups, t.vae_diffusers_config.norm_num_groups);
  assert.equal(tc.encoder.embedDim, t.dino.embed_dim);
  assert.equal(tc.encoder.numRegisterTokens, t.dino.num_register_tokens);
  assert.equal(tc.encoderInputSize, t.encoder_input_size);
  const g = m.generator.config;
  assert.equal(g.tokenDim, t.mixer.channels);
  assert.equal(g.dim, t.mixer.dim);
  assert.equal(g.depth, t.mixer.depth);
  assert.equal(m.generator.nullLabel, t.null_label);
  assert.equal(m.generatorWeights, 'ema');
  assert.equal(m.globalStep, config.top_level.global_step);
  assert.deepEqual(m.hyperParameters.first_stage_cfg, config.hyper_parameters.first_stage_cfg);
  assert.deepEqual(m.hyperParameters.flow_cfg, config.hyper_parameters.flow_cfg);
  assert.deepEqual(m.report.unknown, []);
  assert.match(m.report.ignored.join('\n'), /metric_tracker\.\* \(8 tensors/);
  assert.match(m.report.notes.join('\n'), /GroupNorm group count is not stored; assumed 8/);
});

for (const name of ['encode', 'encode_crop']) {
  test(`${name}: tokens from the stored bfloat16 encoder, in float32 (tight) and under bf16 autocast (loose)`, () => {
    const tok = load().tokenizer;
    tidy(() =>
      noGrad(() => {
        const images = c(`${name}.images`);
        const tokens = tok.encode(images).unsqueeze(1); // the release returns (B, 1, D)
        assertClose(tokens, c(`${name}.encoded_fp32`), tol(name, 'encoded_fp32'), `${name}.encoded_fp32`);
        assertClose(tokens, c(`${name}.encoded`), tol(name, 'encoded'), `${name}.encoded (float32 run)`);
        const bf16 = autocast(() => tok.encode(images))
          .float()
          .unsqueeze(1);
        assertClose(bf16, c(`${name}.encoded`), tol(name, 'encoded'), `${name}.encoded (bf16 run)`);
      }),
    );
  });
}

/** The decoder as the release runs it: scaled token, Euler from the given noise, latent, VAE (no clamp there). */
function decodeCase(
  tokens: Tensor,
  noise: Tensor,
  steps: number,
  expectLatent: Tensor | null,
  expected: Tensor,
  t: Tolerance,
) {
  const tok = load().tokenizer;
  const { images, grid, nfe } = tok.decode(tokens, { noise, steps, sampler: 'euler' });
  assert.equal(nfe, steps);
  if (expectLatent) assertClose(grid, expectLatent, t, 'latent_out');
  const raw = tok.vae!.decode(grid.div(tok.config.vae!.scalingFactor));
  assertClose(raw, expected, t, 'decoded');
  assertClose(images, expected.clamp(-1, 1), t, 'decoded images (clamped to [-1, 1])');
}

test('decode: 50 Euler steps from the given noise, then the VAE', () => {
  tidy(() =>
    noGrad(() =>
      decodeCase(
        c('decode.token').squeeze(1),
        c('decode.noise'),
        c('decode.steps').item(),
        c('decode.latent_out'),
        c('decode.decoded'),
        tol('decode'),
      ),
    ),
  );
});

function generated(m: OfficialCheckpoint, prefix: string): Tensor {
  const y = c(`${prefix}.y`);
  assert.ok(c(`${prefix}.uc_cond`).eq(m.generator.nullLabel!).all().item(), 'uc_cond is the null label');
  return generate(classField(m.generator, y), c(`${prefix}.noise`), {
    steps: c(`${prefix}.steps`).item(),
    guidance: { scale: c(`${prefix}.cfg_scale`).item(), interval: c(`${prefix}.t_interval`).toArray() },
  }).z;
}

test('generate: the EMA generator with guidance 1.5 on [0.3, 0.9] matches; the online weights do not', () => {
  tidy(() =>
    noGrad(() => {
      assertClose(generated(load(), 'generate'), c('generate.generated'), tol('generate'), 'generated');
      const online = loadOfficialCheckpoint(ckpt, { ...options, generatorWeights: 'online' });
      assert.equal(online.generatorWeights, 'online');
      assert.throws(() => assertClose(generated(online, 'generate'), c('generate.generated'), tol('generate'), 'x'));
    }),
  );
});

test('the whole pipeline: generated tokens, decoded to images', () => {
  tidy(() =>
    noGrad(() => {
      const tokens = generated(load(), 'pipeline');
      assertClose(tokens, c('pipeline.generated'), tol('pipeline', 'generated'), 'pipeline.generated');
      decodeCase(
        tokens.squeeze(1),
        c('pipeline.decode_noise'),
        c('pipeline.decode_steps').item(),
        null,
        c('pipeline.decoded'),
        tol('pipeline', 'decoded'),
      );
    }),
  );
});

test('the model YAML is accepted when given and checked against the weights', () => {
  const yaml = join(dir, 'monolith.yaml');
  const m = loadOfficialCheckpoint(ckpt, { ...options, modelConfig: yaml });
  assert.deepEqual(m.tokenizer.config, load().tokenizer.config);
  const wrong = join(tmp, 'wrong.yaml');
  writeFileSync(wrong, readFileSync(yaml, 'utf8').replace('width: 64', 'width: 96'));
  assert.throws(
    () => loadOfficialCheckpoint(ckpt, { ...options, modelConfig: wrong }),
    /model\.backbone\.main_level\.width is 96 but the checkpoint's weights say 64/,
  );
});

// ---------------------------------------------------------------------------------------------------------------
// Variants of the file
// ---------------------------------------------------------------------------------------------------------------

/** The fixture's checkpoint object (inert records included), to edit and write back. */
function fixtureObject(): Map<string, any> {
  return loadTorchCheckpoint(ckpt, { inert: true }) as Map<string, any>;
}

test('a checkpoint without EMA weights samples with the online weights, and says so', () => {
  const obj = fixtureObject();
  const sd = obj.get('state_dict') as Map<string, Tensor>;
  for (const k of [...sd.keys()]) if (k.startsWith('ema_model.')) sd.delete(k);
  const file = join(tmp, 'no-ema.ckpt');
  writeTorchSave(file, obj);
  const m = loadOfficialCheckpoint(file, options);
  assert.equal(m.generatorWeights, 'online');
  assert.match(m.report.notes.join('\n'), /no EMA generator weights.*online weights/);
  const online = loadOfficialCheckpoint(ckpt, { ...options, generatorWeights: 'online' });
  tidy(() => {
    for (const [k, v] of online.generator.stateDict()) assert.ok(m.generator.stateDict().get(k)!.equal(v), k);
  });
});

test('unknown extra prefixes and unreadable hyper-parameters are reported and ignored', () => {
  const obj = fixtureObject();
  const sd = obj.get('state_dict') as Map<string, Tensor>;
  sd.set('extra_head.proj.weight', zeros([3, 4]));
  sd.set('extra_head.proj.bias', zeros([3]));
  sd.set('tokenizer.embed.weight', zeros([2, 2]));
  const callback = new PickledObject('mylib.callbacks.Logger', []); // a hyper-parameter the loader does not need
  callback.state = new Map([['every', 10]]);
  (obj.get('hyper_parameters') as Map<string, unknown>).set('logger', callback);
  const file = join(tmp, 'extra.ckpt');
  writeTorchSave(file, obj);
  const m = loadOfficialCheckpoint(file, options);
  assert.deepEqual(m.report.unknown, ['extra_head.proj.* (2 tensors)', 'tokenizer.embed.* (1 tensors)']);
  assert.match(m.report.ignored.join('\n'), /hyper_parameters\.logger: holds a pickled 'mylib\.callbacks\.Logger'/);
  assert.equal(m.hyperParameters.logger, undefined);
  tidy(() =>
    noGrad(() =>
      assertClose(generated(m, 'generate'), c('generate.generated'), tol('generate'), 'generated with extras'),
    ),
  );
});

test("a VAE with diffusers' older attention names (query/key/value/proj_attn) decodes the same", () => {
  const obj = fixtureObject();
  const older = (k: string): string =>
    k
      .replace(/\.to_(q|k|v)\./, (_, x: 'q' | 'k' | 'v') => `.${{ q: 'query', k: 'key', v: 'value' }[x]}.`)
      .replace('.to_out.0.', '.proj_attn.');
  const sd = obj.get('state_dict') as Map<string, Tensor>;
  obj.set('state_dict', new Map([...sd].map(([k, v]) => [k.includes('.ae.ae.') ? older(k) : k, v])));
  assert.ok(
    [...(obj.get('state_dict') as Map<string, Tensor>).keys()].some((k) => k.endsWith('attentions.0.query.weight')),
  );
  const file = join(tmp, 'older-vae.ckpt');
  writeTorchSave(file, obj);
  const m = loadOfficialCheckpoint(file, options);
  tidy(() =>
    noGrad(() => {
      const z = c('decode.latent_out').div(m.tokenizer.config.vae!.scalingFactor);
      assertClose(m.tokenizer.vae!.decode(z), c('decode.decoded'), tol('decode'), 'decoded with older VAE names');
    }),
  );
});

test('a truncated file is refused with a message that names it', () => {
  const bytes = readFileSync(ckpt);
  const half = join(tmp, 'half.ckpt');
  writeFileSync(half, bytes.subarray(0, bytes.length >> 1));
  assert.throws(
    () => loadOfficialCheckpoint(half, options),
    (e: Error) => e.message.includes(half),
  );
  // a complete archive whose pickle stops half-way
  const zip = ZipFile.open(ckpt);
  const entries = [...zip.entries.keys()].map((name): [string, Buffer] => {
    const data = zip.read(name);
    return [name, name.endsWith('data.pkl') ? data.subarray(0, data.length >> 1) : data];
  });
  zip.close();
  const file = join(tmp, 'short-pickle.ckpt');
  writeFileSync(file, zipStored(entries));
  assert.throws(() => loadOfficialCheckpoint(file, options), /truncated pickle/);
});

for (const [global, args] of [
  ['os.system', ['touch MARKER']],
  ['posix.system', ['touch MARKER']],
  ['builtins.eval', ["__import__('os').system('touch MARKER')"]],
  ['subprocess.check_call', [['touch', 'MARKER']]],
] as const) {
  test(`a pickle with ${global} inside hyper_parameters is refused and nothing runs`, () => {
    const marker = join(tmp, `ran-${global}`);
    const obj = fixtureObject();
    const hp = obj.get('hyper_parameters') as Map<string, unknown>;
    const fill = (a: unknown): unknown =>
      typeof a === 'string' ? a.replace('MARKER', marker) : Array.isArray(a) ? a.map(fill) : a;
    // first in hyper_parameters, so that strict mode meets it before the omegaconf objects it refuses as well
    obj.set(
      'hyper_parameters',
      new Map([['on_load', new PickleCall(global, (args as readonly unknown[]).map(fill))], ...hp]),
    );
    const file = join(tmp, `hostile-${global}.ckpt`);
    writeTorchSave(file, obj);
    const refused = new RegExp(`refusing global '${global.replace('.', '\\.')}': it can run code`);
    assert.throws(() => loadOfficialCheckpoint(file, options), refused);
    assert.throws(() => loadTorchCheckpoint(file), refused, 'strict mode refuses it too');
    assert.ok(!existsSync(marker), 'nothing ran');
  });
}
