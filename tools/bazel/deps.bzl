"""External repositories vfu needs, for this workspace and for consumers.

A consuming WORKSPACE calls:

    load("@vfu//tools/bazel:deps.bzl", "vfu_dependencies")
    vfu_dependencies()

Any repository the consumer defined before the call is left alone, so a
hypervisor repository can supply its own Abseil, protobuf or rules.
"""

load(":debian_source.bzl", "debian_source")
load(":offline_standins.bzl", "coverage_tools_standin", "rules_cc_standin")

def _maybe(rule, name, **kwargs):
    if name not in native.existing_rules():
        rule(name = name, **kwargs)

def vfu_dependencies():
    """Declares every external repository vfu builds against."""

    # Abseil from source: ThreadSanitizer only sees absl::Mutex's
    # synchronization when Abseil is compiled with the same flags.
    _maybe(
        debian_source,
        name = "com_google_absl",
        package = "abseil",
        file = "abseil_20220623.1.orig.tar.gz",
        sha256 = "abfe2897f3a30edaa74bc34365afe3c2a3cd012091a97dc7e008f7016adcd5fe",
        strip_prefix = "abseil-20220623.1",
    )
    _maybe(
        native.new_local_repository,
        name = "com_google_protobuf",
        path = "/usr",
        build_file = str(Label("//tools/bazel:system_protobuf.BUILD")),
    )
    # gRPC for the control plane (vfu/control/), only in binaries that ask.
    _maybe(
        native.new_local_repository,
        name = "vfu_grpc",
        path = "/usr",
        build_file = str(Label("//tools/bazel:system_grpc.BUILD")),
    )
    _maybe(
        native.new_local_repository,
        name = "vfu_system",
        path = "/usr",
        build_file = str(Label("//tools/bazel:system_libraries.BUILD")),
    )
    _maybe(
        native.local_repository,
        name = "rules_java",
        path = "/usr/share/bazel/rules/java",
    )
    # Abseil's BUILD files load @bazel_skylib//lib:selects.bzl.
    _maybe(
        native.local_repository,
        name = "bazel_skylib",
        path = "/usr/share/bazel/tools/skylib",
    )
    # Bazel 4.2.3's built-in @platforms predates constraints Abseil names
    # (cpu:wasm32); Debian's bazel-platforms has them.
    _maybe(
        native.local_repository,
        name = "platforms",
        path = "/usr/share/bazel/tools/platforms",
    )
    _maybe(rules_cc_standin, name = "rules_cc")
    _maybe(coverage_tools_standin, name = "remote_coverage_tools")
