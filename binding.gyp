{
  "targets": [
    {
      "target_name": "reptok",
      "sources": [
        "native/addon.cc",
        "native/handles.cc",
        "native/tensors.cc",
        "native/dispatch.cc",
        "native/autograd.cc",
        "native/random.cc",
        "native/optim.cc",
        "native/runtime.cc",
        "native/profiler.cc",
        "native/kernels/library.cc",
        "native/kernels/rms-norm.cc",
        "native/kernels/swiglu.cc",
        "native/kernels/gelu.cc",
        "native/kernels/cosine-rope-qk.cc",
        "native/kernels/attention.cc",
        "native/kernels/token-mlp.cc",
        "native/kernels/linear.cc",
        "native/kernels/onednn.cc",
        "native/distributed.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node native/libtorch-config.cjs --include)"
      ],
      "defines": [
        "NAPI_EXPERIMENTAL",
        "NDEBUG",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "<!@(node native/libtorch-config.cjs --defines)"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
      "cflags_cc": ["-std=c++17", "-fopenmp", "-fexceptions", "-frtti", "-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off", "-Wno-unused-parameter", "-Wno-deprecated-declarations", "-Wno-psabi"],
      "ldflags": ["-fopenmp", "<!@(node native/libtorch-config.cjs --libdirs)"],
      "libraries": ["<!@(node native/libtorch-config.cjs --libs)"]
    }
  ]
}
