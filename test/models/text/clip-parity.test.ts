// CLIP text encoder parity with transformers' CLIPTextModel on text/clip-tiny (Hub key layout `text_model.*`):
// given token ids and attention masks -> last hidden states and the EOS-pooled output.
import { test } from 'node:test';

import { noGrad, tidy } from '../../../src/index.ts';
import { loadSafetensors } from '../../../src/io/index.ts';
import { ClipTextModel, clipTextConfigFromHub, clipTextStateDict } from '../../../src/models/text/clip-text.ts';
import { assertClose, loadFixture } from '../../helpers.ts';

test('text/clip-tiny: hidden states and pooled output match CLIPTextModel', () => {
  const fx = loadFixture('text/clip-tiny');
  const model = noGrad(() => new ClipTextModel(clipTextConfigFromHub(fx.config.hf_config)));
  model.loadStateDict(clipTextStateDict(loadSafetensors(fx.weightsPath).tensors), { context: fx.weightsPath });
  tidy(() =>
    noGrad(() => {
      const out = model.forward(fx.cases.get('text.input_ids')!, fx.cases.get('text.attention_mask')!);
      assertClose(
        out.lastHiddenState,
        fx.cases.get('text.last_hidden_state')!,
        fx.config.tolerance,
        'last_hidden_state',
      );
      assertClose(out.pooled, fx.cases.get('text.pooler_output')!, fx.config.tolerance, 'pooler_output');
    }),
  );
});
