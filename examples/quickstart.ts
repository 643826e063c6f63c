// The README's engine example: fit ‖x‖² with a small MLP.   npx tsx examples/quickstart.ts [steps]
import { F, manualSeed, nn, optim, randn, tidy } from '../src/index.ts';

manualSeed(0); // same seed, same numbers as PyTorch
const model = new nn.Sequential(new nn.Linear(16, 64), new nn.GELU(), new nn.Linear(64, 1));
const opt = new optim.AdamW(model.parameters(), { lr: 1e-3 });
const x = randn([256, 16]);
const y = x.pow(2).sum(1, true); // learn ‖x‖²

const steps = Number(process.argv[2] ?? 2000);
for (let step = 0; step <= steps; step++) {
  const loss = tidy(() => {
    // tidy frees every temporary tensor of the step
    const l = F.mseLoss(model.forward(x), y);
    opt.zeroGrad();
    l.backward();
    opt.step();
    return l.item();
  });
  if (step % 500 === 0) console.log(`step ${step}: loss ${loss.toFixed(4)}`);
}
