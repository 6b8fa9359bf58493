"""A repository rule that unpacks a Debian source package's upstream tarball.

The tarball is fetched with apt from the machine's own Debian archive (no host
is named here) and verified against a checksum, so the build stays offline
apart from the package archive.
"""

def _debian_source_impl(ctx):
    script = ctx.path(ctx.attr._fetch_script)
    tarball = ctx.path(ctx.attr.file)
    result = ctx.execute(
        ["bash", str(script), ctx.attr.package, ctx.attr.file, ctx.attr.sha256, str(tarball)],
        timeout = 600,
        quiet = True,
    )
    if result.return_code != 0:
        fail("could not fetch Debian source %s (%s):\n%s%s" % (
            ctx.attr.package,
            ctx.attr.file,
            result.stdout,
            result.stderr,
        ))
    ctx.extract(tarball, stripPrefix = ctx.attr.strip_prefix)
    ctx.delete(tarball)

debian_source = repository_rule(
    implementation = _debian_source_impl,
    attrs = {
        "package": attr.string(mandatory = True, doc = "Debian source package name"),
        "file": attr.string(mandatory = True, doc = "upstream tarball in that package"),
        "sha256": attr.string(mandatory = True),
        "strip_prefix": attr.string(),
        "_fetch_script": attr.label(default = Label("//tools/bazel:fetch_debian_source.sh")),
    },
    local = False,
)
