"""gRPC stubs from a proto_library, with Debian's protoc plugins.

cc_grpc_library: the C++ service stubs (<stem>.grpc.pb.{h,cc}) as a
cc_library over the proto's cc_proto_library.
py_proto_grpc_library: Python messages and stubs (<stem>_pb2.py,
<stem>_pb2_grpc.py) for Debian's python3-protobuf and python3-grpcio.

Only protos of the main repository without strip_import_prefix: the
generated paths follow the proto's own path.
"""

def _sources(ctx):
    info = ctx.attr.proto[ProtoInfo]
    for src in info.direct_sources:
        if src.owner.workspace_name != "":
            fail("%s: only main-repository protos are supported" % src)
    if info.proto_source_root not in ("", ".") and not info.proto_source_root.startswith(ctx.bin_dir.path):
        fail("%s: strip_import_prefix is not supported" % ctx.attr.proto.label)
    return info

def _protoc_args(info, out_flags):
    args = ["-I."]
    for path in info.transitive_proto_path.to_list():
        if path != ".":
            args.append("-I" + path)
    args.extend(out_flags)
    args.extend([src.short_path if src.owner.workspace_name == "" else src.path for src in info.direct_sources])
    return args

def _run_protoc(ctx, info, outputs, plugin_flags, tools):
    ctx.actions.run(
        executable = ctx.executable._protoc,
        arguments = _protoc_args(info, plugin_flags),
        inputs = info.transitive_sources,
        outputs = outputs,
        tools = tools,
        mnemonic = "GrpcStubs",
        progress_message = "gRPC stubs for %s" % ctx.attr.proto.label,
    )

def _stem(src):
    return src.short_path[:-len(".proto")]

def _cc_grpc_stubs_impl(ctx):
    info = _sources(ctx)
    hdrs = []
    srcs = []
    for src in info.direct_sources:
        stem = _stem(src).split("/")[-1]
        hdrs.append(ctx.actions.declare_file(stem + ".grpc.pb.h", sibling = src))
        srcs.append(ctx.actions.declare_file(stem + ".grpc.pb.cc", sibling = src))
    plugin = ctx.executable._plugin
    _run_protoc(ctx, info, hdrs + srcs, [
        "--plugin=protoc-gen-grpc=" + plugin.path,
        "--grpc_out=" + ctx.bin_dir.path,
    ], [plugin])
    return [
        DefaultInfo(files = depset(hdrs + srcs)),
        OutputGroupInfo(hdrs = depset(hdrs), srcs = depset(srcs)),
    ]

_cc_grpc_stubs = rule(
    implementation = _cc_grpc_stubs_impl,
    attrs = {
        "proto": attr.label(mandatory = True, providers = [ProtoInfo]),
        "_protoc": attr.label(default = "@com_google_protobuf//:protoc", executable = True, cfg = "exec"),
        "_plugin": attr.label(default = "@vfu_grpc//:grpc_cpp_plugin", executable = True, cfg = "exec"),
    },
)

def cc_grpc_library(name, proto, cc_proto, **kwargs):
    """A cc_library with the gRPC C++ stubs of `proto` (a proto_library)."""
    _cc_grpc_stubs(name = name + "_stubs", proto = proto)
    native.filegroup(name = name + "_hdrs", srcs = [":" + name + "_stubs"], output_group = "hdrs")
    native.filegroup(name = name + "_srcs", srcs = [":" + name + "_stubs"], output_group = "srcs")
    native.cc_library(
        name = name,
        srcs = [":" + name + "_srcs"],
        hdrs = [":" + name + "_hdrs"],
        deps = [cc_proto, "@vfu_grpc//:grpc++_unsecure"],
        **kwargs
    )

def _py_grpc_stubs_impl(ctx):
    info = _sources(ctx)
    # Messages for the proto and the main-repository protos it imports;
    # stubs for the proto itself.
    outs = []
    srcs = [s for s in info.transitive_sources.to_list() if s.owner.workspace_name == ""]
    for src in srcs:
        outs.append(ctx.actions.declare_file(ctx.attr.name + "/" + _stem(src) + "_pb2.py"))
    for src in info.direct_sources:
        outs.append(ctx.actions.declare_file(ctx.attr.name + "/" + _stem(src) + "_pb2_grpc.py"))
    out_root = ctx.bin_dir.path + "/" + ctx.label.package + "/" + ctx.attr.name
    plugin = ctx.executable._plugin
    ctx.actions.run(
        executable = ctx.executable._protoc,
        arguments = _protoc_args(info, [
            "--python_out=" + out_root,
            "--plugin=protoc-gen-grpc_python=" + plugin.path,
            "--grpc_python_out=" + out_root,
        ]) + [s.short_path for s in srcs if s not in info.direct_sources],
        inputs = info.transitive_sources,
        outputs = outs,
        tools = [plugin],
        mnemonic = "GrpcPyStubs",
        progress_message = "Python gRPC stubs for %s" % ctx.attr.proto.label,
    )
    return [DefaultInfo(files = depset(outs), runfiles = ctx.runfiles(files = outs))]

py_proto_grpc_library = rule(
    implementation = _py_grpc_stubs_impl,
    doc = "Python messages and gRPC stubs of `proto` and its main-repository imports, under <name>/ (put it on PYTHONPATH).",
    attrs = {
        "proto": attr.label(mandatory = True, providers = [ProtoInfo]),
        "_protoc": attr.label(default = "@com_google_protobuf//:protoc", executable = True, cfg = "exec"),
        "_plugin": attr.label(default = "@vfu_grpc//:grpc_python_plugin", executable = True, cfg = "exec"),
    },
)
