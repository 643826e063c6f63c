"""torch.save files for reptok's restricted-unpickler tests (written by PyTorch itself).

- test/data/pickle-cases.pth + pickle-cases.safetensors: dtypes, views sharing a storage, non-contiguous tensors,
  a Parameter, nested containers and scalars; the .safetensors file holds the expected tensors.
- test/data/malicious.pth: a torch.save archive whose pickle would run a shell command when loaded by pickle.

(The torch-hub style DINOv2 .pth is written by make_dinov2_swiglu.py, with the weights and outputs it is tested on.)

Run with Debian's PyTorch:  /usr/bin/python3 tools/reference/make_pickles.py
"""
import collections
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import save  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(here, "..", "..", "test", "data")

torch.manual_seed(0)
base = torch.randn(4, 6)
expected = {
    "f32": torch.randn(3, 5),
    "f64": torch.randn(2, 2, dtype=torch.float64),
    "f16": torch.randn(7).half(),
    "bf16": torch.randn(3, 3).bfloat16(),
    "i64": torch.arange(-5, 5),
    "i32": torch.arange(6, dtype=torch.int32).reshape(2, 3),
    "u8": torch.arange(250, 256, dtype=torch.uint8),
    "bool": torch.tensor([True, False, True]),
    "scalar": torch.tensor(3.25),
    "base": base,
    "view_rows": base[1:3],          # shares base's storage, with an offset
    "view_t": base.t(),              # non-contiguous strides
    "view_step": base[:, ::2],
    "param": torch.nn.Parameter(torch.randn(2, 3)),
}
obj = {
    "state_dict": collections.OrderedDict((k, v) for k, v in expected.items()),
    "epoch": 7,
    "big": 2 ** 62,
    "lr": 0.5,
    "name": "ünïcode",
    "none": None,
    "flags": [True, False],
    "shape": (2, 3),
    "nested": {"a": {"b": torch.ones(2)}},
    "blob": b"\x00\x01\xff",
}
torch.save(obj, os.path.join(data, "pickle-cases.pth"))
save(os.path.join(data, "pickle-cases.safetensors"), {k: v.detach().contiguous() for k, v in expected.items()})


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/reptok-pickle-exploit",))


torch.save({"weights": torch.zeros(2), "payload": Exploit()}, os.path.join(data, "malicious.pth"))
print("wrote pickle-cases.pth/.safetensors, malicious.pth to", os.path.normpath(data))
