"""vfu_fuzzer(): one libFuzzer target plus a test that replays its corpus.

For a target `foo_fuzzer` with sources defining LLVMFuzzerTestOneInput,
declared in package //pkg (testing/fuzz or the package of the code fuzzed):
  //pkg:foo_fuzzer              the libFuzzer binary; built with
                                --config=fuzz (clang), tagged "manual" so
                                `bazel test //...` skips it
  //pkg:foo_fuzzer_replay_test  a cc_test (any compiler) that runs every
                                seed in pkg/corpus/foo/ and a fixed set of
                                mutations of each
"""

def vfu_fuzzer(name, srcs, deps = [], corpus = None):
    if not name.endswith("_fuzzer"):
        fail("fuzzer names end in _fuzzer: " + name)
    corpus = corpus or name[:-len("_fuzzer")]
    native.cc_library(
        name = name + "_lib",
        testonly = True,
        srcs = srcs,
        deps = deps,
        alwayslink = True,
    )
    native.cc_binary(
        name = name,
        testonly = True,
        deps = [":" + name + "_lib"],
        linkopts = ["-fsanitize=fuzzer"],
        tags = ["manual", "fuzzer"],
    )
    native.cc_test(
        name = name + "_replay_test",
        size = "small",
        deps = [
            ":" + name + "_lib",
            "//testing/fuzz:replay_main",
        ],
        data = native.glob(["corpus/" + corpus + "/**"]),
        args = [native.package_name() + "/corpus/" + corpus],
    )
