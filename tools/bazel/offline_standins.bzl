"""Repositories Bazel 4.2.3 would otherwise download, generated locally.

@rules_cc: Bazel's own C++ tools load @rules_cc//cc:defs.bzl; the released
rules_cc (including Debian's bazel-rules-cc) are newer than this Bazel, so the
stand-in re-exports the native rules.

@remote_coverage_tools: every *_test rule depends on it; this project does
not collect coverage, so two empty filegroups serve.
"""

_RULES_CC_DEFS = '''"""Native C++ rules, re-exported (offline stand-in for rules_cc)."""

def cc_library(**kwargs):
    native.cc_library(**kwargs)

def cc_binary(**kwargs):
    native.cc_binary(**kwargs)

def cc_test(**kwargs):
    native.cc_test(**kwargs)

def cc_import(**kwargs):
    native.cc_import(**kwargs)

def cc_proto_library(**kwargs):
    native.cc_proto_library(**kwargs)

def cc_toolchain(**kwargs):
    native.cc_toolchain(**kwargs)

def cc_toolchain_suite(**kwargs):
    native.cc_toolchain_suite(**kwargs)

def objc_library(**kwargs):
    native.objc_library(**kwargs)
'''

def _rules_cc_standin_impl(ctx):
    ctx.file("WORKSPACE", 'workspace(name = "rules_cc")\n')
    ctx.file("BUILD", "")
    ctx.file("cc/BUILD", "")
    ctx.file("cc/defs.bzl", _RULES_CC_DEFS)

rules_cc_standin = repository_rule(implementation = _rules_cc_standin_impl)

def _coverage_tools_standin_impl(ctx):
    ctx.file("WORKSPACE", 'workspace(name = "remote_coverage_tools")\n')
    ctx.file("BUILD", """
filegroup(name = "coverage_report_generator", visibility = ["//visibility:public"])
filegroup(name = "lcov_merger", visibility = ["//visibility:public"])
""")

coverage_tools_standin = repository_rule(implementation = _coverage_tools_standin_impl)
